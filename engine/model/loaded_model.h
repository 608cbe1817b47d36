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
  // From a GGUF file: its chat template (`tokenizer.chat_template`, Jinja text; "" when absent)
  // and the text of its BOS / EOS tokens, for the chat template. Folders keep these in
  // tokenizer_config.json instead (LoadChatTemplate).
  std::string gguf_chat_template;
  std::string gguf_bos_token, gguf_eos_token;

  // Loads config.json, the safetensors weights and the tokenizer of the folder `dir`, or
  // everything from `dir` when it names a `.gguf` file (gguf_model.h; its byte-level BPE
  // tokenizer from the metadata). Errors name the file and the problem.
  static absl::StatusOr<std::unique_ptr<LoadedModel>> Load(const std::string& dir);
  // The config, tokenizer and chat-template fields without the weights (null): for tools that
  // only tokenize (`longview tokenize`).
  static absl::StatusOr<std::unique_ptr<LoadedModel>> LoadWithoutWeights(const std::string& dir);
  bool is_gguf() const { return dir.ends_with(".gguf"); }

 private:
  static absl::StatusOr<std::unique_ptr<LoadedModel>> LoadParts(const std::string& dir,
                                                                bool weights_too);
};

}  // namespace longview
