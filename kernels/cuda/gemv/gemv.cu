// Gemv (gemv.h): one warp per output column j, lanes striding over k in 16-byte vectors.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/gemv/gemv.h"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

using detail::ToFloat;
using detail::Unpack8;

constexpr int kWarps = 4;   // columns per block
constexpr int kUnroll = 4;  // 16-byte weight loads in flight per lane

// Weights are read once: bypass L1 so that x stays there.
__device__ __forceinline__ uint4 LoadStreaming(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

template <typename T, int M>
__global__ void __launch_bounds__(kWarps * 32)
    GemvKernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
               void* __restrict__ y, int64_t n, int64_t k, int64_t ldy, bool y_float32) {
  detail::PdlWaitThenRelease();
  const int lane = threadIdx.x & 31;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (col >= n) return;
  const int64_t kv = k / 8;  // 16-byte vectors per row
  const uint4* wrow = reinterpret_cast<const uint4*>(w + col * k);
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  float acc[M];
#pragma unroll
  for (int i = 0; i < M; ++i) acc[i] = 0.f;
  for (int64_t base = lane; base < kv; base += 32 * kUnroll) {
    uint4 wv[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = base + u * 32;
      wv[u] = v < kv ? LoadStreaming(wrow + v) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = base + u * 32;
      if (v >= kv) break;
      float wf[8];
      Unpack8<T>(wv[u], wf);
#pragma unroll
      for (int i = 0; i < M; ++i) {
        float xf[8];
        Unpack8<T>(__ldg(xv + i * kv + v), xf);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[i] = fmaf(wf[e], xf[e], acc[i]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < M; ++i) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], off);
  }
  if (lane != 0) return;
  const float b = bias != nullptr ? ToFloat(bias[col]) : 0.f;
#pragma unroll
  for (int i = 0; i < M; ++i) {
    if (y_float32) {
      static_cast<float*>(y)[i * ldy + col] = acc[i] + b;
    } else {
      static_cast<T*>(y)[i * ldy + col] = detail::FromFloat<T>(acc[i] + b);
    }
  }
}

template <typename T>
cudaError_t Launch(const GemvArgs& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.n + kWarps - 1) / kWarps));
  const int64_t ldy = a.ldy > 0 ? a.ldy : a.n;
  const T* x = static_cast<const T*>(a.x);
  const T* w = static_cast<const T*>(a.w);
  const T* bias = static_cast<const T*>(a.bias);
  switch (a.m) {
#define LV_GEMV_CASE(M)                                                                           \
  case M:                                                                                         \
    LV_CUDA_RETURN_IF_ERROR(detail::LaunchPdl(GemvKernel<T, M>, dim3(grid), dim3(kWarps * 32), 0, \
                                              stream, x, w, bias, a.y, a.n, a.k, ldy,             \
                                              a.y_float32));                                      \
    break;
    LV_GEMV_CASE(1)
    LV_GEMV_CASE(2)
    LV_GEMV_CASE(3)
    LV_GEMV_CASE(4)
    LV_GEMV_CASE(5)
    LV_GEMV_CASE(6)
    LV_GEMV_CASE(7)
    LV_GEMV_CASE(8)
#undef LV_GEMV_CASE
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace

bool GemvSupports(const GemvArgs& a) {
  return a.m >= 1 && a.m <= kGemvMaxM && a.n >= 1 && a.k >= 8 && a.k % 8 == 0 &&
         (a.ldy == 0 || a.ldy >= a.n) && a.x != nullptr && a.w != nullptr && a.y != nullptr &&
         detail::Aligned16(a.x) && detail::Aligned16(a.w) && a.n / kWarps < (int64_t{1} << 31);
}

cudaError_t Gemv(const GemvArgs& a, cudaStream_t stream) {
  LV_CUDA_REQUIRE(GemvSupports(a));
  LV_DISPATCH_DTYPE(a.dtype, T, { return Launch<T>(a, stream); });
}

}  // namespace longview::cuda
