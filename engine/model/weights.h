// Model weights as float32 host tensors, loaded from a Hugging Face model folder and checked
// against the ModelConfig: every expected tensor present with the right shape, nothing
// unexpected (`*.rotary_emb.inv_freq` buffers of older checkpoints are ignored).
//
//   ASSIGN_OR_RETURN(ModelConfig cfg, LoadModelConfig(dir + "/config.json"));
//   ASSIGN_OR_RETURN(ModelWeights w, LoadModelWeights(dir, cfg));
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/model/model_config.h"

namespace longview {

// Row-major float32 tensor. Linear weights keep Hugging Face's [out_features, in_features].
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct LayerWeights {
  HostTensor input_layernorm;           // [hidden]
  HostTensor q_proj, k_proj, v_proj;    // [heads*hd, hidden], [kv*hd, hidden], [kv*hd, hidden]
  HostTensor q_bias, k_bias, v_bias;    // empty unless cfg.attention_bias
  HostTensor o_proj;                    // [hidden, heads*hd]
  HostTensor post_attention_layernorm;  // [hidden]
  HostTensor gate_proj, up_proj;        // [inter, hidden]
  HostTensor down_proj;                 // [hidden, inter]
};

struct ModelWeights {
  HostTensor embed_tokens;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  HostTensor norm;     // [hidden]
  HostTensor lm_head;  // [vocab, hidden]; empty when tied (use embed_tokens)
};

// Every tensor a config implies, in Hugging Face naming, with its shape and where it goes in `w`
// (whose `layers` must already have cfg.num_hidden_layers entries). Shared by the safetensors
// and GGUF loaders.
struct WeightSlot {
  std::string name;             // e.g. "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;   // Hugging Face's, e.g. [q_dim, hidden]
  HostTensor* dest;
};
std::vector<WeightSlot> WeightSlots(const ModelConfig& cfg, ModelWeights& w);

// Errors name the file and tensor: missing tensor, unexpected tensor, wrong shape, unsupported
// dtype, plus every error SafetensorsArchive reports.
absl::StatusOr<ModelWeights> LoadModelWeights(const std::string& model_dir, const ModelConfig& cfg);

}  // namespace longview
