// A model folder (or file) loaded for serving: its config, its tokenizer and its weights.
//
//   ASSIGN_OR_RETURN(auto lm, LoadedModel::Load("/models/llama"));
//   ASSIGN_OR_RETURN(auto cpu, CpuModel::Create(lm->config, lm->weights));  // a backend
// Thread-safety: const after Load.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "engine/model/model_config.h"
#include "engine/model/weights.h"
#include "engine/text/tokenizer.h"

namespace longview {

struct LoadedModel {
  std::string dir;
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
  // The float32 host weights, shared by the backends built from them. `longview serve` on a GPU
  // drops them once the CUDA backend holds its own copy (then null: only a given runner may be
  // used with such a model).
  std::shared_ptr<const ModelWeights> weights;

  // Loads config.json, the safetensors weights and the tokenizer of `dir`. Errors name the
  // file and the problem.
  static absl::StatusOr<std::unique_ptr<LoadedModel>> Load(const std::string& dir);
};

}  // namespace longview
