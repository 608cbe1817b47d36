// Shared helpers of the GPU kernel tests (tests/gpu/*_test.cc, one gpu_kernel_tests binary):
// the logged seed, bf16/fp16 bits, device buffers, and the pass criterion of STYLE: Kernels
// (|gpu - ref| <= atol + rtol * |ref| for every element, plus a normalised mean squared error).
//
//   std::mt19937_64 rng(Seed() + 7);
//   auto x = RandomBits(n, DType::kBF16, rng, 1.0);
//   DeviceBuffer d(n * 2);  CUDA_OK(Upload(d, x));
//   Comparison c = Compare(gpu_bits, t, ref, TolFor(t));  EXPECT_TRUE(c.Pass(TolFor(t)));
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cuda/dtype.h"

namespace longview::cuda {

#define CUDA_OK(expr)                                                              \
  do {                                                                             \
    const cudaError_t e_ = (expr);                                                 \
    ASSERT_EQ(e_, cudaSuccess) << #expr << ": " << cudaGetErrorString(e_);         \
  } while (0)

inline constexpr uint16_t kPoison = 0xFFFF;  // NaN in bf16 and in fp16

inline uint64_t Seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("LV_TEST_SEED");
    const uint64_t s = env != nullptr ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    std::printf("gpu_kernel_tests seed=%llu (LV_TEST_SEED to repeat)\n",
                static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

inline uint16_t ToBits(float f, DType t) {
  if (t == DType::kBF16) {
    const __nv_bfloat16_raw r = __float2bfloat16_rn(f);
    return r.x;
  }
  const __half_raw r = __float2half_rn(f);
  return r.x;
}

inline float FromBits(uint16_t b, DType t) {
  if (t == DType::kBF16) {
    __nv_bfloat16_raw r;
    r.x = b;
    return __bfloat162float(__nv_bfloat16(r));
  }
  __half_raw r;
  r.x = b;
  return __half2float(__half(r));
}

// Device buffer; freed on scope exit.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes > 0 && cudaMalloc(&ptr_, bytes) != cudaSuccess) ptr_ = nullptr;
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) (void)cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  template <typename U>
  U* as() const {
    return static_cast<U*>(ptr_);
  }
  bool ok() const { return bytes_ == 0 || ptr_ != nullptr; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

template <typename U>
inline cudaError_t Upload(DeviceBuffer& d, const std::vector<U>& h) {
  return cudaMemcpy(d.get(), h.data(), h.size() * sizeof(U), cudaMemcpyHostToDevice);
}
template <typename U>
inline cudaError_t Download(std::vector<U>& h, const DeviceBuffer& d) {
  return cudaMemcpy(h.data(), d.get(), h.size() * sizeof(U), cudaMemcpyDeviceToHost);
}

struct Tolerance {
  double atol, rtol, nmse;
};
inline Tolerance TolFor(DType t) {
  return t == DType::kBF16 ? Tolerance{1e-2, 1e-2, 1e-4} : Tolerance{2e-3, 2e-3, 4e-6};
}

struct Comparison {
  double max_abs_err = 0;
  double nmse = 0;
  int64_t num_bad = 0;  // outside atol + rtol * |ref|, or NaN
  int64_t first_bad = -1;
  bool Pass(const Tolerance& tol) const { return num_bad == 0 && nmse <= tol.nmse; }
};

// gpu holds element bits of dtype t.
inline Comparison Compare(const std::vector<uint16_t>& gpu, DType t, const std::vector<double>& ref,
                   const Tolerance& tol) {
  Comparison c;
  double err2 = 0, ref2 = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double g = FromBits(gpu[i], t);
    const double err = std::fabs(g - ref[i]);
    if (!(err <= tol.atol + tol.rtol * std::fabs(ref[i]))) {  // NaN fails here
      if (c.first_bad < 0) c.first_bad = static_cast<int64_t>(i);
      ++c.num_bad;
    }
    if (std::isfinite(err)) c.max_abs_err = std::max(c.max_abs_err, err);
    err2 += std::isfinite(err) ? err * err : INFINITY;
    ref2 += ref[i] * ref[i];
  }
  c.nmse = err2 / std::max(ref2, 1e-30);
  return c;
}

inline std::string Verdict(const Comparison& c, const Tolerance& tol) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "max_err=%.3g nmse=%.3g bad=%lld %s", c.max_abs_err, c.nmse,
                static_cast<long long>(c.num_bad), c.Pass(tol) ? "PASS" : "FAIL");
  return buf;
}

// Random elements of dtype t: returns bits; `values` gets them back as doubles (rounded).
inline std::vector<uint16_t> RandomBits(size_t n, DType t, std::mt19937_64& rng, double scale,
                                 double offset = 0) {
  std::normal_distribution<float> normal;
  std::vector<uint16_t> bits(n);
  for (auto& b : bits) b = ToBits(static_cast<float>(offset + scale * normal(rng)), t);
  return bits;
}

inline constexpr DType kDTypes[] = {DType::kBF16, DType::kFP16};

}  // namespace longview::cuda
