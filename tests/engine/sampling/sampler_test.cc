#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace longview {
namespace {

using ::testing::HasSubstr;

// Upper critical values of the chi-square distribution at p = 0.001, by degrees of freedom.
double ChiSquareCritical001(int dof) {
  static constexpr double kTable[] = {0,      10.828, 13.816, 16.266, 18.467, 20.515,
                                      22.458, 24.322, 26.124, 27.877, 29.588};
  EXPECT_GE(dof, 1);
  EXPECT_LE(dof, 10);
  return kTable[std::clamp(dof, 1, 10)];
}

const std::vector<float> kLogits = {1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, -0.5f, 0.8f, 1.2f};

// Reference softmax(logits / temperature) in double, restricted to `support` and renormalised.
std::vector<double> Reference(const std::vector<float>& logits, double temperature,
                              const std::vector<bool>& support) {
  double max_l = -std::numeric_limits<double>::infinity();
  for (float l : logits) max_l = std::max(max_l, static_cast<double>(l));
  std::vector<double> p(logits.size());
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    p[i] = support[i] ? std::exp((logits[i] - max_l) / temperature) : 0.0;
    total += p[i];
  }
  for (double& x : p) x /= total;
  return p;
}

std::vector<bool> All(size_t n) { return std::vector<bool>(n, true); }

// Draws `num_draws` tokens and checks: nothing outside `support`; the counts fit `expected`
// by a chi-square test at p = 0.001 with (support size - 1) degrees of freedom.
void ExpectFits(const SamplingParams& params, const std::vector<double>& expected,
                int num_draws = 200000) {
  Sampler sampler(params);
  std::vector<int64_t> counts(kLogits.size(), 0);
  for (int i = 0; i < num_draws; ++i) {
    std::vector<float> logits = kLogits;
    const int32_t tok = sampler.Sample(logits, {}, {});
    ASSERT_GE(tok, 0);
    ASSERT_LT(tok, static_cast<int32_t>(kLogits.size()));
    ++counts[tok];
  }
  double chi2 = 0;
  int support = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "token " << i << " is outside the support";
      continue;
    }
    ++support;
    const double e = expected[i] * num_draws;
    ASSERT_GE(e, 5) << "bin too small for a chi-square test";
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  ASSERT_GE(support, 2);
  EXPECT_LT(chi2, ChiSquareCritical001(support - 1))
      << "counts: " << ::testing::PrintToString(counts);
}

TEST(SamplerTest, GreedyPicksArgmax) {
  SamplingParams p;
  p.temperature = 0;
  Sampler sampler(p);
  std::vector<float> logits = kLogits;
  EXPECT_EQ(sampler.Sample(logits, {}, {}), 2);
  std::vector<float> ties = {0.5f, 3.0f, -1.0f, 3.0f, 3.0f};
  EXPECT_EQ(sampler.Sample(ties, {}, {}), 1);  // lowest index among equal maxima
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> with_nan = {nan, -2.0f, nan, -1.0f};
  EXPECT_EQ(sampler.Sample(with_nan, {}, {}), 3);
}

TEST(SamplerTest, GreedyIgnoresSeedAndTruncation) {
  SamplingParams p;
  p.temperature = 0;
  p.top_k = 3;
  p.top_p = 0.5;
  for (uint64_t seed : {1u, 2u, 3u}) {
    p.seed = seed;
    Sampler sampler(p);
    for (int i = 0; i < 10; ++i) {
      std::vector<float> logits = kLogits;
      EXPECT_EQ(sampler.Sample(logits, {}, {}), 2);
    }
  }
}

TEST(SamplerTest, EmptyLogitsReturnMinusOne) {
  Sampler sampler(SamplingParams{});
  std::vector<float> logits;
  EXPECT_EQ(sampler.Sample(logits, {}, {}), -1);
}

TEST(SamplerTest, UniformsAreInUnitIntervalWithMeanHalf) {
  SamplingParams p;
  p.seed = 7;
  Sampler sampler(p);
  double sum = 0;
  constexpr int kN = 100000;
  for (int i = 0; i < kN; ++i) {
    const double u = sampler.NextUniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  // Standard error of the mean is 1 / sqrt(12 N) ~ 0.0009.
  EXPECT_NEAR(sum / kN, 0.5, 0.005);
}

std::vector<int32_t> DrawSequence(const SamplingParams& p, int n) {
  Sampler sampler(p);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    std::vector<float> logits = kLogits;
    out.push_back(sampler.Sample(logits, {}, {}));
  }
  return out;
}

TEST(SamplerTest, SameSeedSameSequence) {
  SamplingParams p;
  p.seed = 12345;
  p.temperature = 1.3;
  EXPECT_EQ(DrawSequence(p, 500), DrawSequence(p, 500));
  Sampler a(p), b(p);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.NextUniform(), b.NextUniform());
}

TEST(SamplerTest, DifferentSeedsDiffer) {
  SamplingParams p;
  p.temperature = 1.3;
  p.seed = 1;
  const std::vector<int32_t> first = DrawSequence(p, 500);
  p.seed = 2;
  EXPECT_NE(first, DrawSequence(p, 500));
  p.seed = std::nullopt;  // random device: two samplers almost surely differ
  Sampler a(p), b(p);
  EXPECT_NE(a.NextUniform(), b.NextUniform());
}

TEST(SamplerTest, SeedZeroIsUsable) {
  // splitmix64 seeding must not leave xoshiro in its all-zero fixed point.
  SamplingParams p;
  p.seed = 0;
  Sampler sampler(p);
  double first = sampler.NextUniform();
  bool varied = false;
  for (int i = 0; i < 10; ++i) varied |= sampler.NextUniform() != first;
  EXPECT_TRUE(varied);
}

TEST(SamplerTest, ChiSquareTemperatureOne) {
  SamplingParams p;
  p.seed = 101;
  ExpectFits(p, Reference(kLogits, 1.0, All(kLogits.size())));
}

TEST(SamplerTest, ChiSquareTemperatureZeroPointSeven) {
  SamplingParams p;
  p.seed = 202;
  p.temperature = 0.7;
  ExpectFits(p, Reference(kLogits, 0.7, All(kLogits.size())));
}

TEST(SamplerTest, ChiSquareTopK) {
  SamplingParams p;
  p.seed = 303;
  p.top_k = 4;
  p.temperature = 0.9;
  // The four largest logits: 2.0 (2), 1.5 (5), 1.2 (8), 1.0 (0).
  std::vector<bool> support(kLogits.size(), false);
  for (int i : {2, 5, 8, 0}) support[i] = true;
  ExpectFits(p, Reference(kLogits, 0.9, support));
}

TEST(SamplerTest, TopKLargerThanVocabIsNoOp) {
  SamplingParams p;
  p.seed = 304;
  p.top_k = 1000;
  ExpectFits(p, Reference(kLogits, 1.0, All(kLogits.size())), 50000);
}

TEST(SamplerTest, ChiSquareTopP) {
  SamplingParams p;
  p.seed = 404;
  p.top_p = 0.7;
  // Independently: smallest most-probable set whose mass reaches 0.7.
  const std::vector<double> full = Reference(kLogits, 1.0, All(kLogits.size()));
  std::vector<int> order(kLogits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return full[a] > full[b]; });
  std::vector<bool> support(kLogits.size(), false);
  double mass = 0;
  int kept = 0;
  for (int i : order) {
    support[i] = true;
    ++kept;
    mass += full[i];
    if (mass >= 0.7) break;
  }
  ASSERT_GT(kept, 1);
  ASSERT_LT(kept, static_cast<int>(kLogits.size()));
  ExpectFits(p, Reference(kLogits, 1.0, support));
}

TEST(SamplerTest, ChiSquareTopKThenTopPAtLowTemperature) {
  SamplingParams p;
  p.seed = 505;
  p.temperature = 0.7;
  p.top_k = 5;
  p.top_p = 0.8;
  // Top-5 at T=0.7: {2, 5, 8, 0, 7}; renormalised masses make {2, 5, 8} the 0.8 nucleus.
  std::vector<bool> top5(kLogits.size(), false);
  for (int i : {2, 5, 8, 0, 7}) top5[i] = true;
  const std::vector<double> r = Reference(kLogits, 0.7, top5);
  ASSERT_LT(r[2] + r[5], 0.8);
  ASSERT_GE(r[2] + r[5] + r[8], 0.8);
  std::vector<bool> support(kLogits.size(), false);
  for (int i : {2, 5, 8}) support[i] = true;
  ExpectFits(p, Reference(kLogits, 0.7, support));
}

TEST(SamplerTest, TopPKeepsTheSmallestSetReachingTheMass) {
  // Probabilities 0.5, 0.3, 0.2: the nucleus is the shortest prefix whose mass is >= top_p.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  const std::vector<std::pair<double, int>> cases = {{0.49, 1}, {0.51, 2}, {0.79, 2}, {0.81, 3}};
  for (const auto& [top_p, expected_size] : cases) {
    SCOPED_TRACE(top_p);
    SamplingParams p;
    p.seed = 42;
    p.top_p = top_p;
    Sampler sampler(p);
    std::vector<int> counts(3, 0);
    for (int i = 0; i < 5000; ++i) {
      std::vector<float> row = logits;
      ++counts[sampler.Sample(row, {}, {})];
    }
    for (int tok = 0; tok < 3; ++tok) {
      if (tok < expected_size) {
        EXPECT_GT(counts[tok], 0) << tok;
      } else {
        EXPECT_EQ(counts[tok], 0) << tok;
      }
    }
  }
}

TEST(SamplerTest, TinyTopPKeepsOnlyTheBestToken) {
  SamplingParams p;
  p.seed = 606;
  p.top_p = 1e-9;
  Sampler sampler(p);
  for (int i = 0; i < 1000; ++i) {
    std::vector<float> logits = kLogits;
    ASSERT_EQ(sampler.Sample(logits, {}, {}), 2);
  }
}

TEST(SamplerTest, ChiSquareMinP) {
  SamplingParams p;
  p.seed = 707;
  p.min_p = 0.3;
  // Keep p_i >= 0.3 p_max, i.e. logit >= 2 + ln 0.3 = 0.796: {0, 2, 5, 7, 8}.
  std::vector<bool> support(kLogits.size(), false);
  for (size_t i = 0; i < kLogits.size(); ++i) support[i] = kLogits[i] >= 2.0 + std::log(0.3);
  ASSERT_EQ(std::count(support.begin(), support.end(), true), 5);
  ExpectFits(p, Reference(kLogits, 1.0, support));
}

TEST(SamplerTest, MinPOneKeepsOnlyTheMaxima) {
  SamplingParams p;
  p.seed = 808;
  p.min_p = 1.0;
  Sampler sampler(p);
  for (int i = 0; i < 1000; ++i) {
    std::vector<float> logits = kLogits;
    ASSERT_EQ(sampler.Sample(logits, {}, {}), 2);
  }
}

TEST(SamplerTest, NegativeInfinityIsNeverDrawn) {
  SamplingParams p;
  p.seed = 909;
  Sampler sampler(p);
  const float inf = std::numeric_limits<float>::infinity();
  for (int i = 0; i < 2000; ++i) {
    std::vector<float> logits = {-inf, 0.0f, -inf, 0.0f};
    const int32_t tok = sampler.Sample(logits, {}, {});
    ASSERT_TRUE(tok == 1 || tok == 3) << tok;
  }
}

TEST(SamplerTest, RepetitionPenaltyFollowsHfRule) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0;
  Sampler sampler(p);
  std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  const std::vector<int32_t> prompt = {0, 0, 99, -1};  // out-of-range ids are ignored
  const std::vector<int32_t> output = {1, 1, 1, 4};
  EXPECT_EQ(sampler.Sample(logits, prompt, output), 4);
  // Each distinct token once, whether seen in the prompt or the output, however often.
  EXPECT_EQ(logits, (std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f, 1.5f}));
}

TEST(SamplerTest, PresenceAndFrequencyPenaltiesUseOutputOnly) {
  SamplingParams p;
  p.temperature = 0;
  p.presence_penalty = 0.5;
  p.frequency_penalty = 0.25;
  Sampler sampler(p);
  std::vector<float> logits = {2.0f, 1.0f, 3.0f, 0.5f};
  const std::vector<int32_t> prompt = {0, 1};
  const std::vector<int32_t> output = {2, 2, 2, 3, 7};
  // Token 2: 3 - (0.25 * 3 + 0.5) = 1.75; token 3: 0.5 - 0.75 = -0.25; prompt untouched.
  EXPECT_EQ(sampler.Sample(logits, prompt, output), 0);
  EXPECT_EQ(logits, (std::vector<float>{2.0f, 1.0f, 1.75f, -0.25f}));
}

TEST(SamplerTest, NegativePenaltiesEncourageRepetition) {
  SamplingParams p;
  p.temperature = 0;
  p.presence_penalty = -1.0;
  p.frequency_penalty = -0.5;
  Sampler sampler(p);
  std::vector<float> logits = {2.0f, 1.0f};
  const std::vector<int32_t> output = {1, 1};
  EXPECT_EQ(sampler.Sample(logits, {}, output), 1);
  EXPECT_EQ(logits, (std::vector<float>{2.0f, 3.0f}));
}

TEST(SamplerTest, RepetitionPenaltyBeforePresenceAndFrequency) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 4.0;
  p.frequency_penalty = 1.0;
  Sampler sampler(p);
  std::vector<float> logits = {8.0f, -1.0f};
  const std::vector<int32_t> output = {0, 1};
  EXPECT_EQ(sampler.Sample(logits, {}, output), 0);
  // 8 / 4 - 1 = 1 (the other order would give 7 / 4 = 1.75); -1 * 4 - 1 = -5.
  EXPECT_EQ(logits, (std::vector<float>{1.0f, -5.0f}));
}

TEST(SamplerTest, PenaltiesShiftTheSampledDistribution) {
  SamplingParams p;
  p.seed = 1001;
  p.presence_penalty = 2.0;
  Sampler sampler(p);
  const std::vector<int32_t> output = {0};
  int zeros = 0;
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) {
    std::vector<float> logits = {0.0f, 0.0f};
    zeros += sampler.Sample(logits, {}, output) == 0 ? 1 : 0;
  }
  // P(0) = e^-2 / (1 + e^-2) = 0.1192; 5 sigma is about 0.0115.
  EXPECT_NEAR(static_cast<double>(zeros) / kN, 0.1192, 0.0115);
}

void ExpectInvalid(const SamplingParams& p, const std::string& field) {
  const absl::Status status = ValidateSamplingParams(p);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
  EXPECT_THAT(std::string(status.message()), HasSubstr(field));
}

TEST(SamplerTest, ValidationAcceptsDefaultsAndEdges) {
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams{}).ok());
  SamplingParams p;
  p.temperature = 0;
  p.top_k = -1;
  p.top_p = 1.0;
  p.min_p = 1.0;
  p.repetition_penalty = 0.01;
  p.presence_penalty = -2;
  p.frequency_penalty = 2;
  EXPECT_TRUE(ValidateSamplingParams(p).ok());
  p.min_p = 0;
  p.top_k = 50;
  EXPECT_TRUE(ValidateSamplingParams(p).ok());
}

TEST(SamplerTest, ValidationNamesTheField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto with = [](auto mutate) {
    SamplingParams p;
    mutate(p);
    return p;
  };
  ExpectInvalid(with([](SamplingParams& p) { p.temperature = -0.1; }), "temperature");
  ExpectInvalid(with([&](SamplingParams& p) { p.temperature = nan; }), "temperature");
  ExpectInvalid(with([](SamplingParams& p) { p.top_p = 0; }), "top_p");
  ExpectInvalid(with([](SamplingParams& p) { p.top_p = 1.01; }), "top_p");
  ExpectInvalid(with([&](SamplingParams& p) { p.top_p = nan; }), "top_p");
  ExpectInvalid(with([](SamplingParams& p) { p.min_p = -0.01; }), "min_p");
  ExpectInvalid(with([](SamplingParams& p) { p.min_p = 1.5; }), "min_p");
  ExpectInvalid(with([](SamplingParams& p) { p.top_k = -2; }), "top_k");
  ExpectInvalid(with([](SamplingParams& p) { p.repetition_penalty = 0; }), "repetition_penalty");
  ExpectInvalid(with([](SamplingParams& p) { p.repetition_penalty = -1; }), "repetition_penalty");
  ExpectInvalid(with([](SamplingParams& p) { p.presence_penalty = 2.5; }), "presence_penalty");
  ExpectInvalid(with([](SamplingParams& p) { p.presence_penalty = -2.5; }), "presence_penalty");
  ExpectInvalid(with([](SamplingParams& p) { p.frequency_penalty = -3; }), "frequency_penalty");
  ExpectInvalid(with([&](SamplingParams& p) { p.frequency_penalty = nan; }), "frequency_penalty");
}

}  // namespace
}  // namespace longview
