#include "kernels/cpu/rope.h"

#include <cmath>
#include <numbers>

namespace longview::cpu {

std::vector<float> InvFrequencies(const RopeParams& p) {
  const int64_t half = p.head_dim / 2;
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i) {
    // transformers: 1 / theta ** (arange(0, dim, 2).float() / dim), in float32.
    float exponent = static_cast<float>(2 * i) / static_cast<float>(p.head_dim);
    inv[i] = 1.0f / std::pow(static_cast<float>(p.theta), exponent);
  }
  if (p.scaling == RopeScaling::kLinear) {
    for (auto& f : inv) f = f / static_cast<float>(p.factor);
  } else if (p.scaling == RopeScaling::kLlama3) {
    // Frequencies with wavelength above original_max / low_freq_factor are divided by factor,
    // those below original_max / high_freq_factor kept, and the band between interpolated.
    const double old_len = static_cast<double>(p.original_max_position_embeddings);
    const double low_wavelen = old_len / p.low_freq_factor;
    const double high_wavelen = old_len / p.high_freq_factor;
    for (auto& f : inv) {
      double wavelen = 2.0 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f = static_cast<float>(f / p.factor);
      } else if (wavelen >= high_wavelen) {
        double smooth = (old_len / wavelen - p.low_freq_factor) /
                        (p.high_freq_factor - p.low_freq_factor);
        f = static_cast<float>((1.0 - smooth) * f / p.factor + smooth * f);
      }
    }
  }
  return inv;
}

RopeTable::RopeTable(std::vector<float> inv_freq, int64_t head_dim)
    : inv_freq_(std::move(inv_freq)), head_dim_(head_dim) {}

void RopeTable::Reserve(int64_t max_pos) {
  if (max_pos <= reserved_) return;
  const int64_t half = head_dim_ / 2;
  cos_.resize(max_pos * half);
  sin_.resize(max_pos * half);
  for (int64_t pos = reserved_; pos < max_pos; ++pos) {
    for (int64_t i = 0; i < half; ++i) {
      double angle = static_cast<double>(pos) * static_cast<double>(inv_freq_[i]);
      cos_[pos * half + i] = static_cast<float>(std::cos(angle));
      sin_[pos * half + i] = static_cast<float>(std::sin(angle));
    }
  }
  reserved_ = max_pos;
}

void RopeTable::Rotate(float* x, int64_t pos) const {
  const int64_t half = head_dim_ / 2;
  if (pos < reserved_) {
    const float* c = cos_.data() + pos * half;
    const float* s = sin_.data() + pos * half;
    for (int64_t i = 0; i < half; ++i) {
      float x1 = x[i], x2 = x[i + half];
      x[i] = x1 * c[i] - x2 * s[i];
      x[i + half] = x2 * c[i] + x1 * s[i];
    }
    return;
  }
  for (int64_t i = 0; i < half; ++i) {
    double angle = static_cast<double>(pos) * static_cast<double>(inv_freq_[i]);
    float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
    float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * c - x2 * s;
    x[i + half] = x2 * c + x1 * s;
  }
}

}  // namespace longview::cpu
