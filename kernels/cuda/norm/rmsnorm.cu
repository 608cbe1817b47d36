#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/dispatch.h"
#include "kernels/cuda/norm/rmsnorm.h"
#include "kernels/cuda/pdl.cuh"
#include "kernels/cuda/vec.cuh"

namespace longview::cuda {
namespace {

using detail::FromFloat;
using detail::Pack8;
using detail::ToFloat;
using detail::Unpack8;

constexpr int kThreads = 256;

__device__ __forceinline__ float BlockSum(float v, float* scratch /* [kThreads / 32] */) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) total += scratch[w];  // same order in every thread
  return total;
}

// One block per row. kVec: hidden % 8 == 0 and every pointer 16-byte aligned. Each thread reads
// back only the residual elements it wrote itself, so the two passes need no barrier between.
template <typename T, bool kVec>
__global__ void __launch_bounds__(kThreads)
    FusedAddRmsNormKernel(const T* __restrict__ x, T* __restrict__ residual,
                          const T* __restrict__ weight, T* __restrict__ out, int64_t hidden,
                          float eps) {
  detail::PdlWaitThenRelease();
  __shared__ float scratch[kThreads / 32];
  const int64_t row = blockIdx.x;
  T* r = residual + row * hidden;
  const T* xr = x != nullptr ? x + row * hidden : nullptr;
  T* o = out + row * hidden;
  float sum_sq = 0.f;
  if constexpr (kVec) {
    const int64_t n8 = hidden / 8;
    for (int64_t i = threadIdx.x; i < n8; i += kThreads) {
      float a[8];
      Unpack8<T>(reinterpret_cast<const uint4*>(r)[i], a);
      if (xr != nullptr) {
        float b[8];
        Unpack8<T>(reinterpret_cast<const uint4*>(xr)[i], b);
        for (int e = 0; e < 8; ++e) a[e] += b[e];
        const uint4 packed = Pack8<T>(a);
        reinterpret_cast<uint4*>(r)[i] = packed;
        Unpack8<T>(packed, a);  // the rounded residual is what gets normalised
      }
      for (int e = 0; e < 8; ++e) sum_sq += a[e] * a[e];
    }
  } else {
    for (int64_t i = threadIdx.x; i < hidden; i += kThreads) {
      float a = ToFloat(r[i]);
      if (xr != nullptr) {
        const T rounded = FromFloat<T>(a + ToFloat(xr[i]));
        r[i] = rounded;
        a = ToFloat(rounded);
      }
      sum_sq += a * a;
    }
  }
  const float inv_rms = rsqrtf(BlockSum(sum_sq, scratch) / static_cast<float>(hidden) + eps);
  if constexpr (kVec) {
    const int64_t n8 = hidden / 8;
    for (int64_t i = threadIdx.x; i < n8; i += kThreads) {
      float a[8], w[8];
      Unpack8<T>(reinterpret_cast<const uint4*>(r)[i], a);
      Unpack8<T>(reinterpret_cast<const uint4*>(weight)[i], w);
      for (int e = 0; e < 8; ++e) a[e] = a[e] * inv_rms * w[e];
      reinterpret_cast<uint4*>(o)[i] = Pack8<T>(a);
    }
  } else {
    for (int64_t i = threadIdx.x; i < hidden; i += kThreads) {
      o[i] = FromFloat<T>(ToFloat(r[i]) * inv_rms * ToFloat(weight[i]));
    }
  }
}

template <typename T>
cudaError_t Launch(const RmsNormArgs& a, cudaStream_t stream) {
  if (a.num_rows == 0) return cudaSuccess;
  const bool vec = a.hidden % 8 == 0 && detail::Aligned16(a.residual) &&
                   detail::Aligned16(a.weight) && detail::Aligned16(a.out) &&
                   (a.x == nullptr || detail::Aligned16(a.x));
  const T* x = static_cast<const T*>(a.x);
  T* res = static_cast<T*>(a.residual);
  const T* w = static_cast<const T*>(a.weight);
  T* out = static_cast<T*>(a.out);
  const dim3 grid(static_cast<unsigned>(a.num_rows));
  if (vec) {
    LV_CUDA_RETURN_IF_ERROR(detail::LaunchPdl(FusedAddRmsNormKernel<T, true>, dim3(grid),
                                              dim3(kThreads), 0, stream, x, res, w, out, a.hidden,
                                              a.eps));
  } else {
    LV_CUDA_RETURN_IF_ERROR(detail::LaunchPdl(FusedAddRmsNormKernel<T, false>, dim3(grid),
                                              dim3(kThreads), 0, stream, x, res, w, out, a.hidden,
                                              a.eps));
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t FusedAddRmsNorm(const RmsNormArgs& args, cudaStream_t stream) {
  LV_CUDA_REQUIRE(args.num_rows >= 0 && args.num_rows <= 0x7fffffff && args.hidden >= 1);
  LV_CUDA_REQUIRE(args.residual != nullptr && args.weight != nullptr && args.out != nullptr);
  LV_DISPATCH_DTYPE(args.dtype, T, { return Launch<T>(args, stream); });
}

}  // namespace longview::cuda
