// FillDevice (device_weights.h): random or constant weights for speed runs.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "engine/cuda/internal/device_weights.h"
#include "kernels/cuda/cuda_check.h"

namespace longview::cuda_internal {
namespace {

__device__ __forceinline__ uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

template <typename T>
__global__ void FillKernel(T* p, int64_t n, float scale, uint64_t seed, bool constant) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = scale;
    if (!constant) {
      const uint64_t r = Mix(seed ^ Mix(static_cast<uint64_t>(i)));
      const float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);  // [0, 1)
      v = (2.f * u - 1.f) * scale;
    }
    if constexpr (sizeof(T) == 2 && std::is_same_v<T, __nv_bfloat16>) {
      p[i] = __float2bfloat16_rn(v);
    } else {
      p[i] = __float2half_rn(v);
    }
  }
}

}  // namespace

cudaError_t FillDevice(void* p, int64_t n, cuda::DType dtype, float scale, uint64_t seed,
                       bool constant) {
  LV_CUDA_REQUIRE(n >= 0 && (p != nullptr || n == 0));
  if (n == 0) return cudaSuccess;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, 4096);
  if (dtype == cuda::DType::kBF16) {
    FillKernel<<<blocks, threads>>>(static_cast<__nv_bfloat16*>(p), n, scale, seed, constant);
  } else {
    FillKernel<<<blocks, threads>>>(static_cast<__half*>(p), n, scale, seed, constant);
  }
  return cudaGetLastError();
}

}  // namespace longview::cuda_internal
