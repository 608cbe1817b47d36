#include "scheduler/generator.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "engine/model/weights.h"
#include "scheduler/engine_loop.h"

namespace longview {

absl::StatusOr<GenerateResult> Generate(const LoadedModel& lm, std::string_view prompt,
                                        const GenerateOptions& options,
                                        const TextCallback& on_text) {
  return Generate(lm, lm.tokenizer->Encode(prompt), options, on_text);
}

absl::StatusOr<GenerateResult> Generate(const LoadedModel& lm, std::vector<int32_t> prompt_tokens,
                                        const GenerateOptions& options,
                                        const TextCallback& on_text) {
  if (options.page_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("page_size must be at least 1, got %d", options.page_size));
  }
  if (prompt_tokens.empty()) return absl::InvalidArgumentError("prompt is empty");
  if (options.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_tokens must be at least 1, got %d", options.max_tokens));
  }
  // A pool for this request alone: every page of it, or under a window what the window holds
  // with a step of one page (the prompt is prefilled a page at a time then).
  const int64_t ps = options.page_size;
  const int64_t window = options.attention->ReleasableWindow(lm.config);
  const int64_t total = static_cast<int64_t>(prompt_tokens.size()) + options.max_tokens;
  EngineLoopOptions eo;
  eo.page_size = ps;
  eo.max_num_seqs = 1;
  eo.max_queue = 1;
  eo.enable_prefix_caching = false;
  eo.runner = options.runner;
  eo.max_num_batched_tokens = window > 0 ? ps : eo.max_num_batched_tokens;
  eo.num_kv_pages = options.attention->PagesHeld(total, ps, eo.max_num_batched_tokens,
                                                 ModelReleasableWindow(lm.config));
  GenerateResult result;
  eo.on_step = [&](const std::string&, int64_t num_tokens, int64_t pages) {
    result.peak_kv_pages = std::max(result.peak_kv_pages, pages);
    if (options.on_kv_pages) options.on_kv_pages(num_tokens, pages);
  };
  // The caller keeps the model alive for the whole call: share it without owning it.
  EngineLoop loop(std::shared_ptr<const LoadedModel>(std::shared_ptr<void>(), &lm), eo);
  loop.Start();
  GenerationRequest req;
  req.request_id = "generate";
  req.prompt_tokens = prompt_tokens;
  req.sampling = options.sampling;
  req.max_tokens = options.max_tokens;
  req.stop = options.stop;
  req.ignore_eos = options.ignore_eos;
  req.attention = options.attention;
  req.kv_policy = options.kv_policy;
  ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> stream, loop.Submit(std::move(req)));
  result.prompt_tokens = std::move(prompt_tokens);
  RequestOutput out;
  while (stream->Next(&out)) {
    RETURN_IF_ERROR(out.status);
    for (const SequenceDelta& d : out.deltas) {
      result.output_tokens.insert(result.output_tokens.end(), d.token_ids.begin(),
                                  d.token_ids.end());
      if (!d.text.empty()) {
        result.text += d.text;
        if (on_text) on_text(d.text);
      }
      if (d.finished) result.finish = d.finish_reason;
    }
    if (out.finished) break;
  }
  loop.Stop();
  return result;
}

}  // namespace longview
