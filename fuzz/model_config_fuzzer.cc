// Fuzz target: the config.json reader (engine/model/model_config.h, ParseModelConfig: the input
// is the file's text), and the RoPE frequencies an accepted config gives (engine/model/
// rope_params.h, kernels/cpu/rope.h).
//
// Beyond not crashing: errors are InvalidArgument, and an accepted config is one the engine can
// be built from: sizes positive and at most 2^31, heads divisible by KV heads, an even head
// dimension, one window per layer, positive finite RoPE values, and finite RoPE inverse
// frequencies (an infinite one would make every rotated query and key NaN).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model/model_config.h"
#include "engine/model/rope_params.h"
#include "fuzz/fuzz_check.h"
#include "kernels/cpu/rope.h"

namespace {

constexpr int64_t kMaxSize = int64_t{1} << 31;

bool IsSize(int64_t v) { return v > 0 && v <= kMaxSize; }
bool IsPositiveFinite(double v) { return std::isfinite(v) && v > 0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<longview::ModelConfig> cfg = longview::ParseModelConfig(text, "config.json");
  if (!cfg.ok()) {
    FUZZ_CHECK(cfg.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  FUZZ_CHECK(IsSize(cfg->vocab_size) && IsSize(cfg->hidden_size) &&
             IsSize(cfg->intermediate_size) && IsSize(cfg->num_hidden_layers) &&
             IsSize(cfg->num_attention_heads) && IsSize(cfg->num_key_value_heads) &&
             IsSize(cfg->head_dim) && IsSize(cfg->max_position_embeddings));
  FUZZ_CHECK(cfg->num_attention_heads % cfg->num_key_value_heads == 0);
  FUZZ_CHECK(cfg->head_dim % 2 == 0);
  FUZZ_CHECK(static_cast<int64_t>(cfg->layer_window.size()) == cfg->num_hidden_layers);
  for (int64_t w : cfg->layer_window) FUZZ_CHECK(w >= 0);
  for (int64_t id : cfg->bos_token_ids) FUZZ_CHECK(id >= 0);
  for (int64_t id : cfg->eos_token_ids) FUZZ_CHECK(id >= 0);
  FUZZ_CHECK(IsPositiveFinite(cfg->rms_norm_eps));
  const longview::RopeConfig& rope = cfg->rope;
  FUZZ_CHECK(IsPositiveFinite(rope.theta) && IsPositiveFinite(rope.factor));
  if (rope.type == longview::RopeType::kLlama3) {
    FUZZ_CHECK(IsPositiveFinite(rope.low_freq_factor) && IsPositiveFinite(rope.high_freq_factor));
    FUZZ_CHECK(rope.high_freq_factor > rope.low_freq_factor);
    FUZZ_CHECK(IsSize(rope.original_max_position_embeddings));
  }
  // The frequencies every backend rotates with (a head_dim this large is checked against the
  // weights before anything is built from it; computing it here would only measure memory).
  if (cfg->head_dim <= 4096) {
    const std::vector<float> inv = longview::cpu::InvFrequencies(longview::RopeParamsOf(*cfg));
    FUZZ_CHECK(static_cast<int64_t>(inv.size()) == cfg->head_dim / 2);
    for (float f : inv) FUZZ_CHECK(std::isfinite(f));
  }
  return 0;
}
