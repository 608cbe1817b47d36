#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/rope/rope.h"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

using detail::Pack8;
using detail::Unpack8;

constexpr int kThreads = 128;

// (cos, sin) of a + b from (cos a, sin a) and (cos b, sin b); the composition of decode attention.
__device__ __forceinline__ float2 Compose(float ca, float sa, float cb, float sb) {
  return make_float2(ca * cb - sa * sb, sa * cb + ca * sb);
}

// One block per row. A unit is (head, f0): elements [f0, f0 + 8) and [D/2 + f0, D/2 + f0 + 8)
// of one head, i.e. 8 RoPE pairs, read and written as two 16-byte vectors.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    RotateRowsKernel(T* __restrict__ x, const int32_t* __restrict__ positions,
                     const float* __restrict__ rope_lo, const float* __restrict__ rope_hi,
                     int num_heads, int64_t row_stride, int rope_hi_rows) {
  constexpr int kHalf = D / 2;
  constexpr int kUnitsPerHead = kHalf / 8;
  const int64_t row = blockIdx.x;
  const int64_t pos = positions[row];
  const bool in_range = pos >= 0 && pos < static_cast<int64_t>(rope_hi_rows) * kRopeLoRows;
  const int64_t hi = in_range ? pos >> kRopeLoBits : 0;
  const int64_t lo = in_range ? pos & (kRopeLoRows - 1) : 0;
  T* xr = x + row * row_stride;
  const int units = num_heads * kUnitsPerHead;
  for (int u = threadIdx.x; u < units; u += kThreads) {
    const int head = u / kUnitsPerHead;
    const int f0 = (u % kUnitsPerHead) * 8;
    uint4* p1 = reinterpret_cast<uint4*>(xr + head * D + f0);
    uint4* p2 = reinterpret_cast<uint4*>(xr + head * D + kHalf + f0);
    if (!in_range) {
      const uint4 nan_bits = make_uint4(~0u, ~0u, ~0u, ~0u);
      *p1 = nan_bits;
      *p2 = nan_bits;
      continue;
    }
    const float4* hs = reinterpret_cast<const float4*>(rope_hi + (hi * kHalf + f0) * 2);
    const float4* ls = reinterpret_cast<const float4*>(rope_lo + (lo * kHalf + f0) * 2);
    float x1[8], x2[8];
    Unpack8<T>(*p1, x1);
    Unpack8<T>(*p2, x2);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float4 h = __ldg(hs + k);
      const float4 l = __ldg(ls + k);
      const float2 c0 = Compose(h.x, h.y, l.x, l.y);  // frequency f0 + 2k
      const float2 c1 = Compose(h.z, h.w, l.z, l.w);  // frequency f0 + 2k + 1
      const float a0 = x1[2 * k], b0 = x2[2 * k];
      const float a1 = x1[2 * k + 1], b1 = x2[2 * k + 1];
      x1[2 * k] = a0 * c0.x - b0 * c0.y;
      x2[2 * k] = b0 * c0.x + a0 * c0.y;
      x1[2 * k + 1] = a1 * c1.x - b1 * c1.y;
      x2[2 * k + 1] = b1 * c1.x + a1 * c1.y;
    }
    *p1 = Pack8<T>(x1);
    *p2 = Pack8<T>(x2);
  }
}

}  // namespace

cudaError_t RotateRows(const RotateRowsArgs& a, cudaStream_t stream) {
  LV_CUDA_REQUIRE(a.num_rows >= 0 && a.num_rows <= 0x7fffffff && a.num_heads >= 1);
  LV_CUDA_REQUIRE(a.x != nullptr && a.positions != nullptr && a.rope_lo != nullptr &&
                  a.rope_hi != nullptr && a.rope_hi_rows >= 1);
  LV_CUDA_REQUIRE(detail::Aligned16(a.x) && detail::Aligned16(a.rope_lo) &&
                  detail::Aligned16(a.rope_hi));
  LV_DISPATCH_DTYPE(a.dtype, T, {
    LV_DISPATCH_HEAD_DIM(a.head_dim, kHeadDim, {
      const int64_t packed = static_cast<int64_t>(a.num_heads) * kHeadDim;
      const int64_t stride = a.row_stride != 0 ? a.row_stride : packed;
      LV_CUDA_REQUIRE(stride >= packed && stride % 8 == 0);
      if (a.num_rows == 0) return cudaSuccess;
      RotateRowsKernel<T, kHeadDim><<<static_cast<unsigned>(a.num_rows), kThreads, 0, stream>>>(
          static_cast<T*>(a.x), a.positions, a.rope_lo, a.rope_hi, a.num_heads, stride,
          a.rope_hi_rows);
      return cudaGetLastError();
    });
  });
}

}  // namespace longview::cuda
