// Double-precision pieces shared by the CPU attention kernels' tests (paged and selection):
// the reference rotation, the softmax-weighted sum of values, and the pass criterion
// |got − ref| ≤ atol + rtol·|ref| plus a normalised mean squared error.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace longview::cpu::test {

// Rotates x in place by pos · inv_freq, "rotate half" convention, in double.
inline void RotateRef(std::vector<double>& x, int64_t pos, const std::vector<float>& inv_freq) {
  const size_t half = x.size() / 2;
  for (size_t i = 0; i < half; ++i) {
    double a = static_cast<double>(pos) * inv_freq[i];
    double x1 = x[i], x2 = x[i + half];
    x[i] = x1 * std::cos(a) - x2 * std::sin(a);
    x[i + half] = x2 * std::cos(a) + x1 * std::sin(a);
  }
}

// Σ softmax(scores)_n · values[n][0, d); zeros when there are no scores.
inline std::vector<double> SoftmaxWeightedSum(std::vector<double> scores,
                                              const std::vector<const float*>& values, int64_t d) {
  std::vector<double> acc(d, 0.0);
  if (scores.empty()) return acc;
  double m = *std::max_element(scores.begin(), scores.end()), z = 0;
  for (auto& s : scores) z += (s = std::exp(s - m));
  for (size_t n = 0; n < values.size(); ++n) {
    for (int64_t t = 0; t < d; ++t) acc[t] += scores[n] / z * values[n][t];
  }
  return acc;
}

// Accumulates errors of outputs against references; Expect() applies the pass criterion.
struct ErrorStats {
  double err2 = 0, ref2 = 0, max_excess = 0;
  void Add(double got, double ref) {
    const double e = std::fabs(got - ref);
    err2 += e * e;
    ref2 += ref * ref;
    max_excess = std::max(max_excess, e - (1e-5 + 1e-4 * std::fabs(ref)));
  }
  void Expect() const {
    EXPECT_LE(max_excess, 0.0) << "|out - ref| > atol + rtol |ref|";
    EXPECT_LT(err2 / std::max(ref2, 1e-30), 1e-10) << "normalised mean squared error";
  }
};

}  // namespace longview::cpu::test
