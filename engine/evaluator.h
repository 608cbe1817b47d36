// Quality measurements through the engine, for the evaluation harness (tools/eval/): answer
// accuracy of generation tasks (passkey, multi-key recall, event-stream QA), perplexity, and
// next-token KL divergence of an attention mode against dense attention.
//
// The attention mode and KV policy are parameters so that every later mode and policy is
// measured the same way; values not implemented yet are rejected with InvalidArgument.
//
//   EvalSettings s; s.attention.mode = "sliding_window"; s.attention.window = 512;
//   ASSIGN_OR_RETURN(PerplexityResult r, MeasurePerplexity(lm, text, s));
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "engine/generator.h"

namespace longview {

struct AttentionSettings {
  std::string mode = "dense";  // dense | sliding_window
  int64_t window = 0;          // sliding_window: tokens attended, >= 1
  int64_t sinks = 0;           // sliding_window: attention sinks kept (StreamingLLM)
};

struct KvPolicySettings {
  std::string policy = "none";  // none
  int64_t budget = 0;           // tokens of KV kept per sequence (0 = unlimited)
};

struct EvalSettings {
  AttentionSettings attention;
  KvPolicySettings kv;
  int64_t page_size = 16;
  int64_t chunk = 512;  // prefill chunk for perplexity
};

// InvalidArgument naming the field for unknown or unsupported values.
absl::Status ValidateEvalSettings(const EvalSettings& s);
// The forward options implementing the settings.
absl::StatusOr<ForwardOptions> ForwardOptionsFor(const EvalSettings& s);

struct AnswerResult {
  std::string output;  // greedy continuation
  bool correct = false;
  int64_t prompt_tokens = 0;
};

// Greedy continuation of `prompt` (max_tokens: answer tokens + 4); correct when the output,
// leading whitespace removed, starts with `answer` (trimmed).
absl::StatusOr<AnswerResult> AnswerTask(const LoadedModel& lm, std::string_view prompt,
                                        std::string_view answer, const EvalSettings& s);

struct PerplexityResult {
  int64_t tokens = 0;       // predicted tokens (text tokens - 1)
  double nll = 0;           // summed negative log-likelihood, nats
  double nll_dense = 0;     // the same under dense attention
  double kl_vs_dense = 0;   // mean KL(dense || mode) over predicted positions; 0 for dense
  double Perplexity() const;
};

// Runs `text` (BOS prepended as the tokenizer says) through the model under the settings, and,
// for a mode other than dense, through dense attention too.
absl::StatusOr<PerplexityResult> MeasurePerplexity(const LoadedModel& lm, std::string_view text,
                                                   const EvalSettings& s);

}  // namespace longview
