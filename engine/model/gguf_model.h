// A model's configuration and weights from a GGUF file (llama.cpp's format), for the
// architectures the engine serves: `llama` (Llama, Mistral, SmolLM2, ...) and `qwen2`.
// Quantized tensors are dequantized at load into float32 host weights (quantized compute is not
// supported); llama.cpp's q/k row order for its RoPE layout is undone for `llama`.
//
//   ASSIGN_OR_RETURN(auto gguf, GgufFile::Open(path));
//   ASSIGN_OR_RETURN(ModelConfig cfg, ModelConfigFromGguf(*gguf));
//   ASSIGN_OR_RETURN(ModelWeights w, ModelWeightsFromGguf(*gguf, cfg));
//
// Errors name the file and the metadata key or tensor: a missing or ill-typed hyper-parameter,
// an unsupported architecture or rope scaling, a missing, unexpected or wrongly shaped tensor.
#pragma once

#include "common/status.h"
#include "engine/model/gguf.h"
#include "engine/model/model_config.h"
#include "engine/model/weights.h"

namespace longview {

absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& gguf);
absl::StatusOr<ModelWeights> ModelWeightsFromGguf(const GgufFile& gguf, const ModelConfig& cfg);

// The GGUF name of a tensor named the Hugging Face way ("model.layers.3.self_attn.q_proj.weight"
// -> "blk.3.attn_q.weight"); "" for a name with no GGUF counterpart.
std::string GgufTensorName(const std::string& hf_name);

}  // namespace longview
