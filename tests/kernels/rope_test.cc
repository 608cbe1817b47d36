#include "kernels/cpu/rope.h"

#include <cmath>
#include <numbers>
#include <random>

#include "gtest/gtest.h"

namespace longview::cpu {
namespace {

TEST(RopeTest, DefaultFrequencies) {
  RopeParams p;
  p.head_dim = 8;
  p.theta = 10000.0;
  auto inv = InvFrequencies(p);
  ASSERT_EQ(inv.size(), 4u);
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_NEAR(inv[1], std::pow(10000.0, -0.25), 1e-7);
  EXPECT_NEAR(inv[3], std::pow(10000.0, -0.75), 1e-9);
}

TEST(RopeTest, LinearScalingDividesEveryFrequency) {
  RopeParams p;
  p.head_dim = 16;
  auto base = InvFrequencies(p);
  p.scaling = RopeScaling::kLinear;
  p.factor = 4.0;
  auto scaled = InvFrequencies(p);
  for (size_t i = 0; i < base.size(); ++i) EXPECT_FLOAT_EQ(scaled[i], base[i] / 4.0f);
}

TEST(RopeTest, Llama3ScalingBands) {
  // Llama 3.1's parameters: factor 8, low 1, high 4, original context 8192.
  RopeParams p;
  p.head_dim = 128;
  p.theta = 500000.0;
  auto base = InvFrequencies(p);
  p.scaling = RopeScaling::kLlama3;
  p.factor = 8.0;
  p.low_freq_factor = 1.0;
  p.high_freq_factor = 4.0;
  p.original_max_position_embeddings = 8192;
  auto scaled = InvFrequencies(p);
  int kept = 0, divided = 0, smoothed = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    double wavelen = 2 * std::numbers::pi / base[i];
    if (wavelen < 8192.0 / 4) {
      EXPECT_FLOAT_EQ(scaled[i], base[i]);
      ++kept;
    } else if (wavelen > 8192.0) {
      EXPECT_FLOAT_EQ(scaled[i], base[i] / 8.0f);
      ++divided;
    } else {
      double smooth = (8192.0 / wavelen - 1.0) / 3.0;
      EXPECT_NEAR(scaled[i], (1 - smooth) * base[i] / 8 + smooth * base[i], 1e-6 * base[i]);
      ++smoothed;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(smoothed, 0);
}

TEST(RopeTest, RotationIsExactAtLongPositions) {
  // Table and on-the-fly paths agree, preserve the norm, and match a double rotation at
  // positions past 10^6, where a float32 angle would be off by a visible amount.
  RopeParams p;
  p.head_dim = 64;
  p.theta = 500000.0;
  auto inv = InvFrequencies(p);
  RopeTable rope(inv, 64);
  rope.Reserve(1000);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (int64_t pos : {0, 1, 999, 1000, 123457, 3000001}) {
    std::vector<float> x(64);
    for (auto& v : x) v = normal(rng);
    std::vector<float> y = x;
    rope.Rotate(y.data(), pos);
    for (int i = 0; i < 32; ++i) {
      double a = static_cast<double>(pos) * inv[i];
      double r1 = x[i] * std::cos(a) - x[i + 32] * std::sin(a);
      double r2 = x[i + 32] * std::cos(a) + x[i] * std::sin(a);
      EXPECT_NEAR(y[i], r1, 1e-5) << "pos " << pos << " i " << i;
      EXPECT_NEAR(y[i + 32], r2, 1e-5) << "pos " << pos << " i " << i;
    }
  }
}

}  // namespace
}  // namespace longview::cpu
