// Rotary position embedding (RoPE), the "rotate half" convention of Llama / Mistral / Qwen2:
// for i < d/2 the pair (x[i], x[i + d/2]) is rotated by angle pos · inv_freq[i].
//
// Keys are cached before RoPE (DESIGN §3), so attention rotates keys by whatever position a mode
// assigns them. Angles are formed in double: pos · inv_freq in float32 is off by a visible angle
// past ~10⁵ tokens.
//
//   RopeTable rope(InvFrequencies(cfg), head_dim);
//   rope.Rotate(q_head, /*pos=*/1234);
// Thread-safety: Rotate is const and safe to call concurrently once Reserve(max_pos) has run;
// positions beyond the reserved range are computed on the fly.
#pragma once

#include <cstdint>
#include <vector>

namespace longview::cpu {

enum class RopeScaling { kNone, kLinear, kLlama3 };

struct RopeParams {
  int64_t head_dim = 0;
  double theta = 10000.0;
  RopeScaling scaling = RopeScaling::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// inv_freq[i] for i < head_dim / 2, computed as transformers does (float32), with scaling.
std::vector<float> InvFrequencies(const RopeParams& params);

class RopeTable {
 public:
  RopeTable(std::vector<float> inv_freq, int64_t head_dim);

  // Precomputes cos/sin for positions [0, max_pos).
  void Reserve(int64_t max_pos);
  // Rotates x[0, head_dim) in place by position pos (pos >= 0).
  void Rotate(float* x, int64_t pos) const;
  int64_t head_dim() const { return head_dim_; }

 private:
  std::vector<float> inv_freq_;
  int64_t head_dim_;
  int64_t reserved_ = 0;
  std::vector<float> cos_, sin_;  // [reserved_][head_dim / 2]
};

}  // namespace longview::cpu
