#include "engine/model/loaded_model.h"

#include "absl/strings/str_format.h"

namespace longview {

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadedModel::Load(const std::string& dir) {
  auto lm = std::make_unique<LoadedModel>();
  lm->dir = dir;
  ASSIGN_OR_RETURN(lm->config, LoadModelConfig(dir + "/config.json"));
  ASSIGN_OR_RETURN(ModelWeights weights, LoadModelWeights(dir, lm->config));
  ASSIGN_OR_RETURN(lm->tokenizer, Tokenizer::Load(dir));
  if (lm->tokenizer->vocab_size() > lm->config.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s/tokenizer.model has %d pieces, more than config.json's vocab_size %d",
                        dir, lm->tokenizer->vocab_size(), lm->config.vocab_size));
  }
  lm->weights = std::make_shared<const ModelWeights>(std::move(weights));
  return lm;
}

}  // namespace longview
