// Quality measurements through the engine, for the evaluation harness (tools/eval/): answer
// accuracy of generation tasks (passkey, multi-key recall, event-stream QA), perplexity, and
// next-token KL divergence of an attention mode against dense attention.
//
// The attention mode and KV policy are parameters so that every later mode and policy is
// measured the same way; values not implemented yet are rejected with InvalidArgument.
//
//   EvalSettings s;
//   ASSIGN_OR_RETURN(s.attention, Attention::Of(SlidingWindowAttention{.window = 512}));
//   s.bucket = 512;  // also per position: r.buckets[k] covers positions [512k, 512(k+1))
//   ASSIGN_OR_RETURN(PerplexityResult r, MeasurePerplexity(lm, text, s));
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/runner/model_runner.h"
#include "scheduler/generator.h"

namespace longview {

struct EvalSettings {
  Attention attention;  // the mode measured (ParseAttention); dense by default
  // The KV policy measured (kvcache/kv_policy.h), as the APIs name it; with
  // kv_budget_fraction > 0 its budget is that fraction of each task's tokens (the prompt, or the
  // text scored), rounded, at least 1.
  KvPolicyRequest kv;
  double kv_budget_fraction = 0;
  int64_t page_size = 16;
  int64_t chunk = 512;  // prefill chunk for perplexity
  // Perplexity per position: buckets of this many tokens along the text (0: none).
  int64_t bucket = 0;
  // For a mode other than dense, also run dense attention and report nll_dense / KL. Off for
  // texts longer than dense can take (the model's context), or to save the second pass.
  bool compare_dense = true;
  // The backend (e.g. the CUDA runner); null: the CPU backend over the model's host weights.
  std::shared_ptr<ModelRunner> runner;
};

// InvalidArgument naming the field for unknown or unsupported values.
absl::Status ValidateEvalSettings(const EvalSettings& s);
// The policy a task of `tokens` tokens runs under (the budget resolved); errors name the field
// ("kv.budget ...").
absl::StatusOr<KvPolicySpec> ResolveKvPolicy(const EvalSettings& s, int64_t tokens);

struct AnswerResult {
  std::string output;  // greedy continuation
  bool correct = false;
  int64_t prompt_tokens = 0;
  KvPolicySpec kv_policy;  // the policy this prompt ran under (its budget resolved)
};

// Greedy continuation of `prompt` (max_tokens: answer tokens + 4); correct when the output,
// leading whitespace removed, starts with `answer` (trimmed).
absl::StatusOr<AnswerResult> AnswerTask(const LoadedModel& lm, std::string_view prompt,
                                        std::string_view answer, const EvalSettings& s);

// Sums over the predicted tokens whose position in the text (BOS at 0, so the first predicted
// token is at 1) lies in [start, end).
struct PositionBucket {
  int64_t start = 0;
  int64_t end = 0;
  int64_t tokens = 0;
  double nll = 0;        // summed, nats
  double nll_dense = 0;  // summed under dense attention (when compared; = nll for dense)
  double kl_sum = 0;     // summed KL(dense || mode) (when compared; 0 for dense)
  double MeanNll() const;
  double Perplexity() const;  // exp(MeanNll())
  double MeanNllDense() const;
  double MeanKl() const;
};

// Per-token values (index i: the prediction of the token at position first_position + i; the
// dense and KL spans are empty or as long as nll) summed into buckets [k*size, (k+1)*size) of
// position; a bucket holds at least one token; buckets come in order of position.
// REQUIRES: size >= 1.
std::vector<PositionBucket> BucketByPosition(std::span<const double> nll,
                                             std::span<const double> nll_dense,
                                             std::span<const double> kl, int64_t first_position,
                                             int64_t size);

struct PerplexityResult {
  int64_t tokens = 0;       // predicted tokens (text tokens - 1)
  double nll = 0;           // summed negative log-likelihood, nats
  bool has_dense = false;   // nll_dense and kl_vs_dense hold values (dense, or compared)
  double nll_dense = 0;     // the same under dense attention
  double kl_vs_dense = 0;   // mean KL(dense || mode) over predicted positions; 0 for dense
  std::vector<PositionBucket> buckets;  // settings.bucket > 0: along the text
  KvPolicySpec kv_policy;               // the policy this text ran under
  double Perplexity() const;
};

// Runs `text` (BOS prepended as the tokenizer says) through the model under the settings, and,
// for a mode other than dense or a KV policy (unless compare_dense is off), through dense
// attention without a policy too; with
// settings.bucket > 0 also per position (BucketByPosition).
absl::StatusOr<PerplexityResult> MeasurePerplexity(const LoadedModel& lm, std::string_view text,
                                                   const EvalSettings& s);

}  // namespace longview
