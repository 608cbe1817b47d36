#include "engine/generator.h"

#include "absl/strings/str_format.h"
#include "engine/weights.h"
#include "kvcache/block_pool.h"

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
  ASSIGN_OR_RETURN(lm->model, CpuModel::Create(lm->config, std::move(weights)));
  return lm;
}

absl::StatusOr<GenerateResult> Generate(const LoadedModel& lm, std::string_view prompt,
                                        const GenerateOptions& options,
                                        const TextCallback& on_text) {
  return Generate(lm, lm.tokenizer->Encode(prompt), options, on_text);
}

absl::StatusOr<GenerateResult> Generate(const LoadedModel& lm, std::vector<int32_t> prompt_tokens,
                                        const GenerateOptions& options,
                                        const TextCallback& on_text) {
  RETURN_IF_ERROR(ValidateSamplingParams(options.sampling));
  if (options.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_tokens must be at least 1, got %d", options.max_tokens));
  }
  if (options.page_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("page_size must be at least 1, got %d", options.page_size));
  }
  if (prompt_tokens.empty()) return absl::InvalidArgumentError("prompt is empty");
  const int64_t context = lm.config.max_position_embeddings;
  const int64_t total = static_cast<int64_t>(prompt_tokens.size()) + options.max_tokens;
  if (total > context) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "prompt (%d tokens) + max_tokens (%d) = %d exceeds the model's context of %d tokens",
        prompt_tokens.size(), options.max_tokens, total, context));
  }

  CpuModel& model = *lm.model;
  BlockTable table(options.page_size);
  BlockPool pool(table.BlocksNeeded(total));
  HostKvStorage kv(model.kv_layout(options.page_size), pool.num_blocks());
  auto ids = pool.Allocate(pool.num_blocks());
  if (!ids) return absl::ResourceExhaustedError("KV page pool exhausted");
  table.Append(*ids);

  GenerateResult result;
  result.prompt_tokens = std::move(prompt_tokens);
  Sampler sampler(options.sampling);
  SequenceOutput output(
      *lm.tokenizer, EosTokenIds(lm.config.eos_token_ids, *lm.tokenizer),
      {.stop = options.stop, .max_tokens = options.max_tokens, .ignore_eos = options.ignore_eos});

  std::vector<float> logits;
  RETURN_IF_ERROR(
      model.Forward({result.prompt_tokens, 0, &table}, kv, false, logits, options.forward));
  int64_t pos = static_cast<int64_t>(result.prompt_tokens.size());
  while (true) {
    int32_t tok = sampler.Sample(logits, result.prompt_tokens, result.output_tokens);
    result.output_tokens.push_back(tok);
    const std::string text = output.Append(tok);
    if (!text.empty()) {
      result.text += text;
      if (on_text) on_text(text);
    }
    if (output.finished()) break;
    RETURN_IF_ERROR(model.Forward({std::span<const int32_t>(&tok, 1), pos, &table}, kv, false,
                                  logits, options.forward));
    ++pos;
  }
  result.finish = output.reason();
  return result;
}

}  // namespace longview
