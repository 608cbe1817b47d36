#include "scheduler/generator.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "engine/model/weights.h"
#include "kvcache/block_pool.h"

namespace longview {

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
  RETURN_IF_ERROR(ValidateForwardOptions(options.forward));
  const int64_t context = lm.config.max_position_embeddings;
  const int64_t total = static_cast<int64_t>(prompt_tokens.size()) + options.max_tokens;
  const int64_t sinks = options.forward.sinks;
  // Pages out of this window are freed as the stream moves on (the request's or the model's own).
  const int64_t window = ReleasableWindow(lm.config, options.forward);
  if (sinks > 0 && sinks + window > context) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "sinks (%d) + window (%d) = %d exceeds the model's context of %d tokens", sinks, window,
        sinks + window, context));
  }
  if (sinks == 0 && total > context) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "prompt (%d tokens) + max_tokens (%d) = %d exceeds the model's context of %d tokens",
        prompt_tokens.size(), options.max_tokens, total, context));
  }

  if (lm.weights == nullptr) return absl::FailedPreconditionError("Generate: the model has no host weights");
  ASSIGN_OR_RETURN(std::unique_ptr<CpuModel> cpu_model, CpuModel::Create(lm.config, lm.weights));
  CpuModel& model = *cpu_model;
  const int64_t ps = options.page_size;
  const bool windowed = window > 0;
  BlockTable table(ps);
  int32_t num_pages = table.BlocksNeeded(total);
  if (windowed) {
    num_pages = static_cast<int32_t>(std::min<int64_t>(
        num_pages, (sinks + ps - 1) / ps + (window + ps - 1) / ps + 1));
  }
  BlockPool pool(num_pages);
  HostKvStorage kv(model.kv_layout(ps), pool.num_blocks());
  int64_t released_end = 0;  // blocks below it are released (or sinks)
  int64_t peak_pages = 0;
  // Makes the pages ready for tokens [start, end): frees those the query at `start` and later
  // ones no longer see, then allocates what the new tokens need.
  auto make_room = [&](int64_t start, int64_t end) -> absl::Status {
    if (windowed) {
      const BlockRange out = BlocksOutsideWindow(ps, sinks, window, start);
      for (int64_t b = std::max(out.begin, released_end); b < out.end; ++b) {
        const int32_t id = table.ReleaseBlock(b);
        if (id >= 0) RETURN_IF_ERROR(pool.Free(std::span<const int32_t>(&id, 1)));
      }
      released_end = std::max(released_end, out.end);
    }
    auto ids = pool.Allocate(table.BlocksNeeded(end));
    if (!ids) return absl::ResourceExhaustedError("KV page pool exhausted");
    table.Append(*ids);
    peak_pages = std::max(peak_pages, table.NumResident());
    if (options.on_kv_pages) options.on_kv_pages(end, table.NumResident());
    return absl::OkStatus();
  };

  GenerateResult result;
  result.prompt_tokens = std::move(prompt_tokens);
  Sampler sampler(options.sampling);
  SequenceOutput output(
      *lm.tokenizer, EosTokenIds(lm.config.eos_token_ids, *lm.tokenizer),
      {.stop = options.stop, .max_tokens = options.max_tokens, .ignore_eos = options.ignore_eos});

  std::vector<float> logits;
  // Prefill: at once, or under a window a page at a time so that the pages stay bounded.
  const int64_t prompt_len = static_cast<int64_t>(result.prompt_tokens.size());
  for (int64_t start = 0; start < prompt_len;) {
    const int64_t end = windowed ? std::min(prompt_len, (start / ps + 1) * ps) : prompt_len;
    RETURN_IF_ERROR(make_room(start, end));
    RETURN_IF_ERROR(model.Forward(
        {std::span<const int32_t>(result.prompt_tokens).subspan(start, end - start), start, &table},
        kv, false, logits, options.forward));
    start = end;
  }
  int64_t pos = prompt_len;
  while (true) {
    int32_t tok = sampler.Sample(logits, result.prompt_tokens, result.output_tokens);
    result.output_tokens.push_back(tok);
    const std::string text = output.Append(tok);
    if (!text.empty()) {
      result.text += text;
      if (on_text) on_text(text);
    }
    if (output.finished()) break;
    RETURN_IF_ERROR(make_room(pos, pos + 1));
    RETURN_IF_ERROR(model.Forward({std::span<const int32_t>(&tok, 1), pos, &table}, kv, false,
                                  logits, options.forward));
    ++pos;
  }
  result.finish = output.reason();
  result.peak_kv_pages = peak_pages;
  return result;
}

}  // namespace longview
