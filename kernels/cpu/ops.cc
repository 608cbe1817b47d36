#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "common/sanitizers.h"
#ifdef LV_ASAN
#include <sanitizer/asan_interface.h>

#include <cstdio>
#include <cstdlib>
#endif

namespace longview::cpu {
namespace {
int g_num_threads = 0;
}  // namespace

int NumThreads() {
  if (g_num_threads > 0) return g_num_threads;
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(std::min(hw, 16u));
}

void SetNumThreads(int n) { g_num_threads = n; }

void ParallelFor(int64_t n, int64_t min_chunk, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  int64_t threads = std::min<int64_t>(NumThreads(), (n + min_chunk - 1) / std::max<int64_t>(min_chunk, 1));
  if (threads <= 1) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  int64_t chunk = (n + threads - 1) / threads;
  for (int64_t t = 1; t < threads; ++t) {
    int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e) pool.emplace_back([&fn, b, e] { fn(b, e); });
  }
  fn(0, std::min(n, chunk));
  for (auto& th : pool) th.join();
}

namespace {
// Under ASan + UBSan, checks on every element kept this loop from vectorising: Dot was 93% of a
// sanitizer test's time, 17x slower than in the normal build. There the loop goes uninstrumented
// and Dot checks each operand's whole range once instead (CheckReadable), the same bytes the
// element-wise checks covered.
#ifdef LV_ASAN
__attribute__((no_sanitize("address", "undefined")))
#endif
float DotLoop(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

#ifdef LV_ASAN
void CheckReadable(const float* p, int64_t n) {
  if (n <= 0) return;
  void* bad = __asan_region_is_poisoned(const_cast<float*>(p), static_cast<size_t>(n) * sizeof(float));
  if (bad == nullptr) return;
  std::fprintf(stderr, "longview::cpu::Dot: read of %lld floats at %p reaches poisoned memory at %p\n",
               static_cast<long long>(n), static_cast<const void*>(p), bad);
  __asan_describe_address(bad);
  std::abort();
}
#endif
}  // namespace

float Dot(const float* a, const float* b, int64_t n) {
#ifdef LV_ASAN
  CheckReadable(a, n);
  CheckReadable(b, n);
#endif
  return DotLoop(a, b, n);
}

void MatMulTransposed(const float* x, const float* w, const float* bias, float* y, int64_t m,
                      int64_t n, int64_t k) {
  // Parallel over output columns (weight rows): each weight row is streamed once per 4 rows of x.
  ParallelFor(n, 16, [&](int64_t n0, int64_t n1) {
    for (int64_t i = 0; i < m; i += 4) {
      int64_t rows = std::min<int64_t>(4, m - i);
      for (int64_t j = n0; j < n1; ++j) {
        const float* wr = w + j * k;
        float b = bias ? bias[j] : 0.0f;
        for (int64_t r = 0; r < rows; ++r) y[(i + r) * n + j] = Dot(x + (i + r) * k, wr, k) + b;
      }
    }
  });
}

void RmsNorm(const float* x, const float* gamma, float* y, int64_t m, int64_t dim, float eps) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xr = x + i * dim;
    float ss = Dot(xr, xr, dim);
    float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    float* yr = y + i * dim;
    for (int64_t d = 0; d < dim; ++d) yr[d] = gamma[d] * (xr[d] * inv);
  }
}

void SiluMul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void AddInPlace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace longview::cpu
