#include "engine/model/loaded_model.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/model/gguf_model.h"
#include "engine/text/bpe_tokenizer.h"

namespace longview {

namespace {

// The tokenizer a GGUF file carries (`tokenizer.ggml.*`): byte-level BPE ("gpt2").
absl::StatusOr<std::unique_ptr<Tokenizer>> GgufTokenizer(const GgufFile& g, LoadedModel& lm) {
  ASSIGN_OR_RETURN(std::string model, g.GetString("tokenizer.ggml.model"));
  if (model != "gpt2") {
    return absl::InvalidArgumentError(absl::StrCat(
        g.path(), ": metadata 'tokenizer.ggml.model' is '", model,
        "'; only byte-level BPE ('gpt2') tokenizers are read from GGUF files"));
  }
  BpeVocabulary v;
  ASSIGN_OR_RETURN(const std::vector<std::string>* tokens, g.GetStringArray("tokenizer.ggml.tokens"));
  v.tokens = *tokens;
  ASSIGN_OR_RETURN(const std::vector<std::string>* merges, g.GetStringArray("tokenizer.ggml.merges"));
  v.merges = *merges;
  if (g.Find("tokenizer.ggml.token_type") != nullptr) {
    ASSIGN_OR_RETURN(const std::vector<int64_t>* types, g.GetIntArray("tokenizer.ggml.token_type"));
    v.token_types.assign(types->begin(), types->end());
  }
  v.pre = "gpt2";
  if (g.Find("tokenizer.ggml.pre") != nullptr) {
    ASSIGN_OR_RETURN(v.pre, g.GetString("tokenizer.ggml.pre"));
  }
  auto id = [&](const char* key, int32_t* out) -> absl::Status {
    if (g.Find(key) == nullptr) return absl::OkStatus();
    ASSIGN_OR_RETURN(int64_t x, g.GetInt(key));
    if (x < 0 || x >= static_cast<int64_t>(v.tokens.size())) {
      return absl::InvalidArgumentError(absl::StrCat(g.path(), ": metadata '", key, "' = ", x,
                                                     " is not a token id"));
    }
    *out = static_cast<int32_t>(x);
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(id("tokenizer.ggml.bos_token_id", &v.bos_id));
  RETURN_IF_ERROR(id("tokenizer.ggml.eos_token_id", &v.eos_id));
  for (auto [key, flag] : {std::pair{"tokenizer.ggml.add_bos_token", &v.add_bos},
                           std::pair{"tokenizer.ggml.add_eos_token", &v.add_eos}}) {
    if (g.Find(key) == nullptr) continue;
    ASSIGN_OR_RETURN(int64_t b, g.GetInt(key));
    *flag = b != 0;
  }
  if (v.bos_id >= 0) lm.gguf_bos_token = v.tokens[v.bos_id];
  if (v.eos_id >= 0) lm.gguf_eos_token = v.tokens[v.eos_id];
  if (g.Find("tokenizer.chat_template") != nullptr) {
    ASSIGN_OR_RETURN(lm.gguf_chat_template, g.GetString("tokenizer.chat_template"));
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = MakeBpeTokenizer(v);
  if (!tok.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(g.path(), ": ", tok.status().message()));
  }
  return tok;
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadGguf(const std::string& path, bool weights_too) {
  auto lm = std::make_unique<LoadedModel>();
  lm->dir = path;
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> g, GgufFile::Open(path));
  ASSIGN_OR_RETURN(lm->config, ModelConfigFromGguf(*g));
  ASSIGN_OR_RETURN(lm->tokenizer, GgufTokenizer(*g, *lm));
  if (lm->tokenizer->vocab_size() > lm->config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: the tokenizer has %d tokens, more than the model's vocabulary of %d", path,
        lm->tokenizer->vocab_size(), lm->config.vocab_size));
  }
  if (!weights_too) return lm;
  ASSIGN_OR_RETURN(ModelWeights weights, ModelWeightsFromGguf(*g, lm->config));
  lm->weights = std::make_shared<const ModelWeights>(std::move(weights));
  return lm;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadedModel::Load(const std::string& dir) {
  return LoadParts(dir, /*weights_too=*/true);
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadedModel::LoadWithoutWeights(
    const std::string& dir) {
  return LoadParts(dir, /*weights_too=*/false);
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadedModel::LoadParts(const std::string& dir,
                                                                    bool weights_too) {
  if (dir.ends_with(".gguf")) return LoadGguf(dir, weights_too);
  auto lm = std::make_unique<LoadedModel>();
  lm->dir = dir;
  ASSIGN_OR_RETURN(lm->config, LoadModelConfig(dir + "/config.json"));
  ASSIGN_OR_RETURN(lm->tokenizer, Tokenizer::Load(dir));
  if (lm->tokenizer->vocab_size() > lm->config.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s/tokenizer.model has %d pieces, more than config.json's vocab_size %d",
                        dir, lm->tokenizer->vocab_size(), lm->config.vocab_size));
  }
  if (!weights_too) return lm;
  ASSIGN_OR_RETURN(ModelWeights weights, LoadModelWeights(dir, lm->config));
  lm->weights = std::make_shared<const ModelWeights>(std::move(weights));
  return lm;
}

}  // namespace longview
