// Model configuration read from a Hugging Face `config.json`.
//
// Both dialects are accepted: the one most published checkpoints use (`rope_theta`,
// `rope_scaling`, `torch_dtype`) and the one transformers 5 writes (`rope_parameters`,
// `layer_types`, `dtype`).
//
//   ASSIGN_OR_RETURN(ModelConfig cfg, LoadModelConfig("/models/llama/config.json"));
//   int kv_dim = cfg.num_key_value_heads * cfg.head_dim;
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace longview {

enum class Architecture { kLlama, kMistral, kQwen2 };
const char* ArchitectureName(Architecture arch);

enum class RopeType { kDefault, kLinear, kLlama3 };

struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;  // linear and llama3
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;

  bool operator==(const RopeConfig&) const = default;
};

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (Qwen2 always; Llama when attention_bias)
  // Per-layer sliding window in tokens; 0 means full attention for that layer. A query at
  // position i attends keys j with i - window < j <= i (transformers' convention).
  std::vector<int64_t> layer_window;
  std::vector<int64_t> bos_token_ids;  // usually one
  std::vector<int64_t> eos_token_ids;  // config.json may hold one id or a list
  std::string torch_dtype;             // "bfloat16", "float16", "float32" or empty

  bool operator==(const ModelConfig&) const = default;
};

// Parameters the config implies (embeddings, every layer, the final norm, an untied LM head).
int64_t ParameterCount(const ModelConfig& cfg);

// Parses `path` (a config.json). Errors name the file and the field: NotFound for a missing
// file, InvalidArgument for invalid JSON, an unknown architecture, a missing or ill-typed
// field, or inconsistent values (e.g. heads not dividing hidden size, unsupported rope type).
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);

// Same, from JSON text; `source` names it in error messages.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text,
                                             const std::string& source);

}  // namespace longview
