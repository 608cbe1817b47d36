// The model config of the GPU speed runs: Llama-3-8B's exact shape (ANCHORS: hidden 4096, 32
// layers, 32 / 8 heads, head_dim 128, intermediate 14336, vocab 128256, llama3 RoPE); weights are
// random (speed does not depend on the values).
#pragma once

#include "engine/model/model_config.h"

namespace longview {

inline ModelConfig Llama3_8BShape() {
  ModelConfig c;
  c.vocab_size = 128256;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.rms_norm_eps = 1e-5;
  c.rope = RopeConfig{.type = RopeType::kLlama3, .theta = 500000.0, .factor = 8.0,
                      .low_freq_factor = 1.0, .high_freq_factor = 4.0,
                      .original_max_position_embeddings = 8192};
  c.max_position_embeddings = 8192;
  c.layer_window.assign(32, 0);
  return c;
}

}  // namespace longview
