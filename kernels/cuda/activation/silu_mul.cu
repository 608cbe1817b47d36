#include <algorithm>

#include "kernels/cuda/activation/silu_mul.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

using detail::FromFloat;
using detail::Pack8;
using detail::ToFloat;
using detail::Unpack8;

constexpr int kThreads = 256;

__device__ __forceinline__ float Silu(float g) { return g / (1.f + __expf(-g)); }

// Grid: (column blocks, rows). kVec: n, strides % 8 == 0 and pointers 16-byte aligned; columns
// are then counted in groups of 8.
template <typename T, bool kVec>
__global__ void __launch_bounds__(kThreads)
    SiluMulKernel(const T* gate, const T* up, T* out, int64_t n, int64_t gs, int64_t us,
                  int64_t os) {
  detail::PdlWaitThenRelease();
  const int64_t row = blockIdx.y;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if constexpr (kVec) {
    if (col >= n / 8) return;
    float g[8], u[8];
    Unpack8<T>(reinterpret_cast<const uint4*>(gate + row * gs)[col], g);
    Unpack8<T>(reinterpret_cast<const uint4*>(up + row * us)[col], u);
    for (int e = 0; e < 8; ++e) g[e] = Silu(g[e]) * u[e];
    reinterpret_cast<uint4*>(out + row * os)[col] = Pack8<T>(g);
  } else {
    if (col >= n) return;
    out[row * os + col] =
        FromFloat<T>(Silu(ToFloat(gate[row * gs + col])) * ToFloat(up[row * us + col]));
  }
}

template <typename T>
cudaError_t Launch(const SiluMulArgs& a, cudaStream_t stream) {
  const int64_t gs = a.gate_stride ? a.gate_stride : a.n;
  const int64_t us = a.up_stride ? a.up_stride : a.n;
  const int64_t os = a.out_stride ? a.out_stride : a.n;
  LV_CUDA_REQUIRE(gs >= a.n && us >= a.n && os >= a.n);
  if (a.num_rows == 0) return cudaSuccess;
  const bool vec = a.n % 8 == 0 && gs % 8 == 0 && us % 8 == 0 && os % 8 == 0 &&
                   detail::Aligned16(a.gate) && detail::Aligned16(a.up) && detail::Aligned16(a.out);
  const int64_t cols = vec ? a.n / 8 : a.n;
  const int64_t col_blocks = (cols + kThreads - 1) / kThreads;
  LV_CUDA_REQUIRE(col_blocks <= 0x7fffffff);
  const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(a.num_rows));
  const T* g = static_cast<const T*>(a.gate);
  const T* u = static_cast<const T*>(a.up);
  T* o = static_cast<T*>(a.out);
  if (vec) {
    LV_CUDA_RETURN_IF_ERROR(detail::LaunchPdl(SiluMulKernel<T, true>, dim3(grid), dim3(kThreads), 0,
                                              stream, g, u, o, a.n, gs, us, os));
  } else {
    LV_CUDA_RETURN_IF_ERROR(detail::LaunchPdl(SiluMulKernel<T, false>, dim3(grid), dim3(kThreads),
                                              0, stream, g, u, o, a.n, gs, us, os));
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t SiluMul(const SiluMulArgs& args, cudaStream_t stream) {
  LV_CUDA_REQUIRE(args.num_rows >= 0 && args.num_rows <= 65535 && args.n >= 1);
  LV_CUDA_REQUIRE(args.gate != nullptr && args.up != nullptr && args.out != nullptr);
  LV_DISPATCH_DTYPE(args.dtype, T, { return Launch<T>(args, stream); });
}

}  // namespace longview::cuda
