#include "kernels/cpu/ops.h"

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "common/sanitizers.h"
#include "gtest/gtest.h"

namespace longview::cpu {
namespace {

TEST(OpsTest, MatMulTransposedMatchesDouble) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 17, 54}, {5, 97, 33},
                         {17, 64, 128}, {4, 3, 7}}) {
    std::vector<float> x(m * k), w(n * k), b(n), y(m * n, std::nanf(""));
    for (auto& v : x) v = normal(rng);
    for (auto& v : w) v = normal(rng);
    for (auto& v : b) v = normal(rng);
    MatMulTransposed(x.data(), w.data(), b.data(), y.data(), m, n, k);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        double ref = b[j];
        for (int64_t t = 0; t < k; ++t) ref += static_cast<double>(x[i * k + t]) * w[j * k + t];
        EXPECT_NEAR(y[i * n + j], ref, 1e-4 * (1 + std::fabs(ref))) << m << "x" << n << "x" << k;
      }
    }
  }
}

// Under ASan, Dot's loop is uninstrumented (it vectorises) and each operand's range is checked
// whole instead: a read one float past a heap buffer must still be caught.
TEST(OpsTest, DotReadingPastABufferIsCaughtUnderAsan) {
#ifndef LV_ASAN
  GTEST_SKIP() << "only an AddressSanitizer build checks this";
#else
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  constexpr int64_t kN = 20;
  std::unique_ptr<float[]> a(new float[kN]), b(new float[kN + 1]);
  for (int64_t i = 0; i < kN; ++i) a[i] = b[i] = 1.0f;
  b[kN] = 1.0f;
  EXPECT_EQ(Dot(a.get(), b.get(), kN), static_cast<float>(kN));
  EXPECT_DEATH(Dot(b.get(), a.get(), kN + 1), "Dot: read of 21 floats .* reaches poisoned memory");
#endif
}

TEST(OpsTest, RmsNormAndSiluMul) {
  std::vector<float> x = {1, -2, 3, -4}, g = {1, 0.5f, 2, 1}, y(4);
  RmsNorm(x.data(), g.data(), y.data(), 1, 4, 1e-6f);
  const double inv = 1.0 / std::sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-6);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], g[i] * x[i] * inv, 1e-6);
  std::vector<float> gate = {0, 1, -3}, up = {2, 3, 4}, out(3);
  SiluMul(gate.data(), up.data(), out.data(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(out[i], gate[i] / (1 + std::exp(-gate[i])) * up[i], 1e-6);
  }
}

TEST(OpsTest, ParallelForCoversRangeOnce) {
  SetNumThreads(4);
  std::vector<int> hits(1001, 0);
  ParallelFor(1001, 10, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) ++hits[i];
  });
  SetNumThreads(0);
  for (int h : hits) ASSERT_EQ(h, 1);
}

}  // namespace
}  // namespace longview::cpu
