// Sampler: penalties, temperature, top-k / top-p / min-p truncation and an inverse-CDF draw
// from a private xoshiro256** stream, so results do not depend on the standard library.
#include "engine/sampling/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <vector>

#include "engine/sampling/request_limits.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace longview {
namespace {

uint64_t SplitMix64(uint64_t* x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman & Vigna).
uint64_t NextU64(uint64_t* s) {
  const uint64_t result = std::rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = std::rotl(s[3], 45);
  return result;
}

float Sanitize(float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; }

// Lowest index of the largest logit (NaN counts as -inf); 0 when all are -inf / NaN.
int32_t Argmax(std::span<const float> logits) {
  int32_t best = 0;
  float best_value = Sanitize(logits[0]);
  for (size_t i = 1; i < logits.size(); ++i) {
    const float v = Sanitize(logits[i]);
    if (v > best_value) {
      best_value = v;
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

// Sorted copy of the ids in `tokens` that index into a row of `vocab` logits.
std::vector<int32_t> SortedValidIds(std::span<const int32_t> tokens, size_t vocab) {
  std::vector<int32_t> ids;
  ids.reserve(tokens.size());
  for (int32_t id : tokens) {
    if (id >= 0 && static_cast<size_t>(id) < vocab) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

void ApplyPenalties(const SamplingParams& p, std::span<float> logits,
                    std::span<const int32_t> prompt_tokens,
                    std::span<const int32_t> output_tokens) {
  if (p.repetition_penalty != 1.0) {
    // HF rule, once per distinct token seen in the prompt or the output.
    std::vector<int32_t> seen = SortedValidIds(prompt_tokens, logits.size());
    std::vector<int32_t> out = SortedValidIds(output_tokens, logits.size());
    seen.insert(seen.end(), out.begin(), out.end());
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    const float penalty = static_cast<float>(p.repetition_penalty);
    for (int32_t id : seen) {
      float& l = logits[id];
      l = l > 0 ? l / penalty : l * penalty;
    }
  }
  if (p.presence_penalty != 0.0 || p.frequency_penalty != 0.0) {
    // OpenAI rule: logit -= frequency * count + presence * (count > 0), output tokens only.
    const std::vector<int32_t> out = SortedValidIds(output_tokens, logits.size());
    for (size_t i = 0; i < out.size();) {
      size_t j = i;
      while (j < out.size() && out[j] == out[i]) ++j;
      const double count = static_cast<double>(j - i);
      logits[out[i]] -= static_cast<float>(p.frequency_penalty * count + p.presence_penalty);
      i = j;
    }
  }
}

absl::Status RangeError(const char* field, const char* range, double value) {
  return absl::InvalidArgumentError(absl::StrCat(field, " must be ", range, ", got ", value));
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  // Written so that NaN fails every check.
  using namespace request_limits;
  if (!(p.temperature >= kMinTemperature && p.temperature <= kMaxTemperature)) {
    return RangeError("temperature", "in [0, 2]", p.temperature);
  }
  if (!(p.top_p > 0.0 && p.top_p <= 1.0)) return RangeError("top_p", "in (0, 1]", p.top_p);
  if (!(p.min_p >= 0.0 && p.min_p <= 1.0)) return RangeError("min_p", "in [0, 1]", p.min_p);
  if (p.top_k < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k must be -1, 0 (disabled) or positive, got ", p.top_k));
  }
  if (!(p.repetition_penalty > 0.0 && p.repetition_penalty <= kMaxRepetitionPenalty)) {
    return RangeError("repetition_penalty", "in (0, 100]", p.repetition_penalty);
  }
  if (!(p.presence_penalty >= kMinPenalty && p.presence_penalty <= kMaxPenalty)) {
    return RangeError("presence_penalty", "in [-2, 2]", p.presence_penalty);
  }
  if (!(p.frequency_penalty >= kMinPenalty && p.frequency_penalty <= kMaxPenalty)) {
    return RangeError("frequency_penalty", "in [-2, 2]", p.frequency_penalty);
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params) : params_(params) {
  uint64_t seed;
  if (params_.seed.has_value()) {
    seed = *params_.seed;
  } else {
    std::random_device device;
    seed = (static_cast<uint64_t>(device()) << 32) ^ static_cast<uint64_t>(device());
  }
  for (uint64_t& word : state_) word = SplitMix64(&seed);
}

double Sampler::NextUniform() {
  // Top 53 bits: every value is an exact multiple of 2^-53 in [0, 1).
  return static_cast<double>(NextU64(state_) >> 11) * 0x1.0p-53;
}

int32_t Sampler::Sample(std::span<float> logits, std::span<const int32_t> prompt_tokens,
                        std::span<const int32_t> output_tokens) {
  if (logits.empty()) return -1;
  ApplyPenalties(params_, logits, prompt_tokens, output_tokens);
  if (params_.temperature == 0.0) return Argmax(logits);

  const size_t vocab = logits.size();
  float max_logit = -std::numeric_limits<float>::infinity();
  for (float l : logits) max_logit = std::max(max_logit, Sanitize(l));
  if (max_logit == -std::numeric_limits<float>::infinity()) return Argmax(logits);

  // Unnormalised softmax(logits / T) in double: the most probable tokens weigh exactly 1.
  const double inv_temperature = 1.0 / params_.temperature;
  weights_.resize(vocab);
  for (size_t i = 0; i < vocab; ++i) {
    const float l = Sanitize(logits[i]);
    weights_[i] =
        l == max_logit ? 1.0 : std::exp((static_cast<double>(l) - max_logit) * inv_temperature);
  }

  order_.resize(vocab);
  for (size_t i = 0; i < vocab; ++i) order_[i] = static_cast<int32_t>(i);
  size_t num_candidates = vocab;
  // Most probable first; ties go to the lower id so truncation is deterministic.
  const auto more_probable = [this](int32_t a, int32_t b) {
    return weights_[a] != weights_[b] ? weights_[a] > weights_[b] : a < b;
  };
  bool sorted = false;
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < vocab) {
    num_candidates = static_cast<size_t>(params_.top_k);
    std::nth_element(order_.begin(), order_.begin() + (num_candidates - 1), order_.end(),
                     more_probable);
    std::sort(order_.begin(), order_.begin() + num_candidates, more_probable);
    sorted = true;
  }
  if (params_.top_p < 1.0) {
    if (!sorted) std::sort(order_.begin(), order_.begin() + num_candidates, more_probable);
    sorted = true;
    double total = 0;
    for (size_t i = 0; i < num_candidates; ++i) total += weights_[order_[i]];
    // Smallest prefix whose probability reaches top_p; never empty.
    const double target = params_.top_p * total;
    double cumulative = 0;
    size_t keep = 0;
    while (keep < num_candidates) {
      cumulative += weights_[order_[keep++]];
      if (cumulative >= target) break;
    }
    num_candidates = keep;
  }
  if (params_.min_p > 0.0) {
    // The most probable token weighs 1 and survives top-k / top-p, so the threshold is min_p.
    const auto end =
        std::stable_partition(order_.begin(), order_.begin() + num_candidates,
                              [this](int32_t id) { return weights_[id] >= params_.min_p; });
    num_candidates = static_cast<size_t>(end - order_.begin());
  }

  double total = 0;
  for (size_t i = 0; i < num_candidates; ++i) total += weights_[order_[i]];
  const double u = NextUniform() * total;
  double cumulative = 0;
  for (size_t i = 0; i < num_candidates; ++i) {
    cumulative += weights_[order_[i]];
    if (u < cumulative) return order_[i];
  }
  // Rounding left u at or past the last boundary: take the last candidate with weight.
  for (size_t i = num_candidates; i-- > 0;) {
    if (weights_[order_[i]] > 0) return order_[i];
  }
  return order_[0];
}

}  // namespace longview
