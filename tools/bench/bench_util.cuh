// Shared pieces of the CUDA kernel benchmarks (tools/bench/*.cu): the error check that makes a
// bench function return 1, and device-side pseudo-random bf16 inputs (host generation of GBs of
// KV would take minutes). Device-side header: include from .cu files only.
//
//   BENCH_CHECK(FillRandomBf16(pages, n, /*seed=*/7));
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <vector>

// Returns 1 from the enclosing function, printing the failed call, unless it gave cudaSuccess.
#define BENCH_CHECK(expr)                                                                        \
  do {                                                                                           \
    const cudaError_t e_ = (expr);                                                               \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      return 1;                                                                                  \
    }                                                                                            \
  } while (0)

namespace longview::bench {

// n bf16 values in [-2, 2) from a hash of the index and the seed (truncated: any bf16 will do).
__global__ void FillRandomBf16Kernel(uint16_t* dst, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9E3779B1u ^ static_cast<uint32_t>(i >> 32) ^ seed;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    const float f = (static_cast<float>(h >> 8) * (1.0f / 16777216.0f)) * 4.0f - 2.0f;
    dst[i] = static_cast<uint16_t>(__float_as_uint(f) >> 16);
  }
}

inline cudaError_t FillRandomBf16(void* dst, size_t n, uint32_t seed) {
  FillRandomBf16Kernel<<<1024, 256>>>(static_cast<uint16_t*>(dst), n, seed);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  return cudaDeviceSynchronize();
}

// Counts NaNs among n bf16 values on the device (a NaN in a timed output means the timing
// measured a broken kernel).
inline cudaError_t CountBf16NaNs(const void* dev, size_t n, int64_t* nans) {
  std::vector<uint16_t> host(n);
  if (cudaError_t e = cudaMemcpy(host.data(), dev, n * 2, cudaMemcpyDeviceToHost);
      e != cudaSuccess) {
    return e;
  }
  *nans = 0;
  for (uint16_t b : host) *nans += (b & 0x7f80) == 0x7f80 && (b & 0x7f) != 0;
  return cudaSuccess;
}

}  // namespace longview::bench
