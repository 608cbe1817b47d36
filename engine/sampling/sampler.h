// Token sampling from a logit row: penalties, temperature, top-k, top-p, min-p, seeded RNG.
//
//   SamplingParams p; p.temperature = 0.8; p.top_p = 0.95; p.seed = 42;
//   Sampler s(p);
//   int32_t tok = s.Sample(logits, history);
//
// Order (as vLLM): repetition penalty (prompt + output tokens, HF rule: divide positive logits,
// multiply negative ones), presence / frequency penalties (output tokens, OpenAI rule), then
// greedy if temperature == 0, else temperature, top-k, top-p, min-p, and a draw.
// Reproducible: the same params, seed and inputs give the same tokens on every platform (own
// RNG, no std:: distributions).
// Thread-safety: one Sampler per sequence; not shared.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/status.h"

namespace longview {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy
  int32_t top_k = 0;         // 0 or -1 = disabled
  double top_p = 1.0;        // (0, 1]
  double min_p = 0.0;        // [0, 1]
  double repetition_penalty = 1.0;  // > 0; 1 = off
  double presence_penalty = 0.0;    // [-2, 2]
  double frequency_penalty = 0.0;   // [-2, 2]
  std::optional<uint64_t> seed;     // none = seeded from a random device
};

// InvalidArgument naming the field when a value is out of range.
absl::Status ValidateSamplingParams(const SamplingParams& params);

class Sampler {
 public:
  // REQUIRES: ValidateSamplingParams(params).ok().
  explicit Sampler(const SamplingParams& params);

  // `prompt_tokens` / `output_tokens` feed the penalties (ids outside the row are ignored).
  // `logits` is modified in place: it holds the penalised logits afterwards. NaN logits are
  // treated as -inf. Returns -1 only when `logits` is empty.
  int32_t Sample(std::span<float> logits, std::span<const int32_t> prompt_tokens,
                 std::span<const int32_t> output_tokens);

  // Uniform double in [0, 1) from the sampler's RNG (exposed for tests).
  double NextUniform();

 private:
  SamplingParams params_;
  uint64_t state_[4];  // xoshiro256** state
  std::vector<int32_t> order_;  // scratch: candidate ids, most probable first once sorted
  std::vector<double> weights_;  // scratch: unnormalised probabilities, by token id
};

}  // namespace longview
