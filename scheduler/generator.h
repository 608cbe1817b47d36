// Single-sequence text generation: one request through an engine loop of its own (the one
// engine path: scheduler, KV cache, runner, sampling, stop conditions — EOS, max tokens, stop
// strings), on the CPU backend or a given runner, with a KV pool sized for this request alone.
// What `longview generate` and the parity tests use.
//
//   ASSIGN_OR_RETURN(auto lm, LoadedModel::Load("/models/llama"));
//   GenerateOptions opt; opt.max_tokens = 32; opt.sampling.temperature = 0;
//   ASSIGN_OR_RETURN(GenerateResult r, Generate(*lm, "Once upon a time", opt,
//                                               [](std::string_view s) { std::cout << s; }));
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/attention/attention_mode.h"
#include "engine/model/loaded_model.h"
#include "engine/model/model_config.h"
#include "kvcache/kv_policy.h"
#include "engine/runner/model_runner.h"
#include "engine/sampling/sampler.h"
#include "engine/sampling/sequence_output.h"
#include "engine/text/tokenizer.h"

namespace longview {

struct GenerateOptions {
  SamplingParams sampling;
  int64_t max_tokens = 16;         // >= 1
  std::vector<std::string> stop;   // stop strings
  bool ignore_eos = false;
  int64_t page_size = 16;          // KV page size in tokens
  Attention attention;
  KvPolicySpec kv_policy;  // KV budget policy (kvcache/kv_policy.h); none by default
  // Called after each step: tokens in the sequence once the step has run, and KV pages the
  // sequence holds (bounded under a sliding window, see Generate).
  std::function<void(int64_t num_tokens, int64_t kv_pages)> on_kv_pages;
  // The backend to run on; null: the CPU backend over the model's host weights. A given runner
  // must hold at least the pages this request needs.
  std::shared_ptr<ModelRunner> runner;
};

struct GenerateResult {
  std::vector<int32_t> prompt_tokens;
  std::vector<int32_t> output_tokens;
  std::string text;  // generated text (stop string excluded)
  FinishReason finish = FinishReason::kLength;
  int64_t peak_kv_pages = 0;  // most KV pages held at once
};

using TextCallback = std::function<void(std::string_view)>;

// InvalidArgument for bad options or when prompt + max_tokens exceeds the model's context.
// Under a window (the request's, or the model's own on every layer) pages are allocated as tokens
// arrive and every page that holds no sink and left the window is freed, so at most
// ceil(sinks / page_size) + ceil(window / page_size) + 1 pages are held whatever the length; the
// prompt is then prefilled a page at a time. With sinks > 0 (StreamingLLM) positions are re-assigned and never exceed
// sinks + window - 1, so the length is not limited by the model's context (sinks + window is).
absl::StatusOr<GenerateResult> Generate(const LoadedModel& lm, std::vector<int32_t> prompt_tokens,
                                        const GenerateOptions& options,
                                        const TextCallback& on_text = nullptr);
absl::StatusOr<GenerateResult> Generate(const LoadedModel& lm, std::string_view prompt,
                                        const GenerateOptions& options,
                                        const TextCallback& on_text = nullptr);

}  // namespace longview
