#include "scheduler/evaluator.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "absl/strings/str_format.h"
#include "scheduler/engine_loop.h"

namespace longview {

absl::Status ValidateEvalSettings(const EvalSettings& s) {
  if (!(s.kv_budget_fraction >= 0 && s.kv_budget_fraction <= 1)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kv.budget_fraction must be in [0, 1], got %g", s.kv_budget_fraction));
  }
  if (s.kv_budget_fraction > 0 && s.kv.budget.has_value()) {
    return absl::InvalidArgumentError("kv.budget and kv.budget_fraction exclude each other");
  }
  // The policy's own rules, for a task as long as the budget needs (a fraction: 1000 tokens).
  RETURN_IF_ERROR(ResolveKvPolicy(s, 1000).status());
  if (s.page_size < 1) return absl::InvalidArgumentError("page_size must be at least 1");
  if (s.chunk < 1) return absl::InvalidArgumentError("chunk must be at least 1");
  if (s.bucket < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("bucket must be >= 0, got %d", s.bucket));
  }
  return absl::OkStatus();
}

absl::StatusOr<KvPolicySpec> ResolveKvPolicy(const EvalSettings& s, int64_t tokens) {
  KvPolicyRequest r = s.kv;
  if (s.kv_budget_fraction > 0) {
    r.budget = std::max<int64_t>(
        1, std::llround(s.kv_budget_fraction * static_cast<double>(tokens)));
  }
  return ParseKvPolicy(r, "kv.");
}

namespace {

std::string_view TrimLeft(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) ++i;
  return s.substr(i);
}

std::string_view Trim(std::string_view s) {
  s = TrimLeft(s);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

absl::StatusOr<AnswerResult> AnswerTask(const LoadedModel& lm, std::string_view prompt,
                                        std::string_view answer, const EvalSettings& s) {
  RETURN_IF_ERROR(ValidateEvalSettings(s));
  GenerateOptions opt;
  opt.sampling.temperature = 0;
  opt.page_size = s.page_size;
  opt.attention = s.attention;
  opt.runner = s.runner;
  const int64_t num_prompt = static_cast<int64_t>(lm.tokenizer->Encode(prompt).size());
  ASSIGN_OR_RETURN(opt.kv_policy, ResolveKvPolicy(s, num_prompt));
  std::string want(Trim(answer));
  opt.max_tokens = static_cast<int64_t>(lm.tokenizer->Encode(want, false).size()) + 4;
  ASSIGN_OR_RETURN(GenerateResult r, Generate(lm, prompt, opt));
  AnswerResult out;
  out.output = r.text;
  out.prompt_tokens = static_cast<int64_t>(r.prompt_tokens.size());
  out.kv_policy = opt.kv_policy;
  out.correct = !want.empty() && TrimLeft(r.text).starts_with(want);
  return out;
}

double PerplexityResult::Perplexity() const {
  return tokens > 0 ? std::exp(nll / static_cast<double>(tokens)) : 0.0;
}

double PositionBucket::MeanNll() const {
  return tokens > 0 ? nll / static_cast<double>(tokens) : 0.0;
}
double PositionBucket::Perplexity() const { return tokens > 0 ? std::exp(MeanNll()) : 0.0; }
double PositionBucket::MeanNllDense() const {
  return tokens > 0 ? nll_dense / static_cast<double>(tokens) : 0.0;
}
double PositionBucket::MeanKl() const {
  return tokens > 0 ? kl_sum / static_cast<double>(tokens) : 0.0;
}

std::vector<PositionBucket> BucketByPosition(std::span<const double> nll,
                                             std::span<const double> nll_dense,
                                             std::span<const double> kl, int64_t first_position,
                                             int64_t size) {
  std::vector<PositionBucket> out;
  for (size_t i = 0; i < nll.size(); ++i) {
    const int64_t pos = first_position + static_cast<int64_t>(i);
    const int64_t start = pos / size * size;
    if (out.empty() || out.back().start != start) {
      out.push_back({.start = start, .end = start + size});
    }
    PositionBucket& b = out.back();
    ++b.tokens;
    b.nll += nll[i];
    if (i < nll_dense.size()) b.nll_dense += nll_dense[i];
    if (i < kl.size()) b.kl_sum += kl[i];
  }
  return out;
}

namespace {

// log-softmax of one logit row, in double.
void LogSoftmax(const float* logits, int64_t n, std::vector<double>& out) {
  out.resize(n);
  double m = *std::max_element(logits, logits + n), z = 0;
  for (int64_t i = 0; i < n; ++i) z += std::exp(static_cast<double>(logits[i]) - m);
  const double lz = m + std::log(z);
  for (int64_t i = 0; i < n; ++i) out[i] = logits[i] - lz;
}

// Per predicted position, from one request's prompt logits as they stream out of the engine:
// the log-probabilities of each row, kept until the comparison run has the same position.
struct ScoredRows {
  int64_t next = 0;  // next position expected (earlier ones came already, e.g. before a preemption)
  std::map<int64_t, std::vector<double>> pending;  // position -> log-softmax row
};

}  // namespace

absl::StatusOr<PerplexityResult> MeasurePerplexity(const LoadedModel& lm, std::string_view text,
                                                   const EvalSettings& s) {
  RETURN_IF_ERROR(ValidateEvalSettings(s));
  std::vector<int32_t> ids = lm.tokenizer->Encode(text);
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < 2) return absl::InvalidArgumentError("perplexity text must have at least 2 tokens");
  if (n > s.attention->MaxSequenceLength(lm.config.max_position_embeddings)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "text has %d tokens, more than the model's context of %d", n,
        lm.config.max_position_embeddings));
  }
  ASSIGN_OR_RETURN(const KvPolicySpec policy, ResolveKvPolicy(s, n));
  const bool dense = s.attention == Attention() && !policy.enabled();
  const bool compare = !dense && s.compare_dense;
  const int64_t vocab = lm.config.vocab_size;
  // One engine loop scores the text under the mode (and under dense attention to compare), both
  // requests admitted together and given a chunk each per step, so their positions advance in
  // step and the rows waiting for their counterpart stay within a chunk.
  const int64_t runs = compare ? 2 : 1;
  EngineLoopOptions eo;
  eo.page_size = s.page_size;
  eo.enable_prefix_caching = false;
  eo.max_num_seqs = runs;
  eo.max_num_batched_tokens = runs * s.chunk;
  eo.long_prefill_token_threshold = s.chunk;
  eo.runner = s.runner;
  eo.num_kv_pages = s.runner != nullptr ? s.runner->kv_storage().num_pages()
                                        : runs * ((n + s.page_size - 1) / s.page_size + 1);
  EngineLoop loop(std::shared_ptr<const LoadedModel>(std::shared_ptr<void>(), &lm), eo);

  // Per predicted token (the token at position i + 1).
  std::vector<double> tok_nll(n - 1, 0.0), tok_nll_dense, tok_kl;
  if (compare) {
    tok_nll_dense.assign(n - 1, 0.0);
    tok_kl.assign(n - 1, 0.0);
  }
  ScoredRows mode_rows, dense_rows;
  // Takes the rows of one run; for a position both runs have, computes NLL (and KL) and drops it.
  auto take = [&](ScoredRows& mine, ScoredRows& other, bool is_mode, int64_t first,
                  std::span<const float> rows) {
    const int64_t count = static_cast<int64_t>(rows.size()) / vocab;
    for (int64_t j = 0; j < count; ++j) {
      const int64_t pos = first + j;
      if (pos < mine.next || pos >= n - 1) continue;
      mine.next = pos + 1;
      std::vector<double> lp;
      LogSoftmax(rows.data() + j * vocab, vocab, lp);
      const int32_t target = ids[pos + 1];
      (is_mode ? tok_nll : tok_nll_dense)[pos] = -lp[target];
      if (!compare) continue;
      auto it = other.pending.find(pos);
      if (it == other.pending.end()) {
        mine.pending.emplace(pos, std::move(lp));
        continue;
      }
      const std::vector<double>& mode_lp = is_mode ? lp : it->second;
      const std::vector<double>& dense_lp = is_mode ? it->second : lp;
      double kl = 0;
      for (int64_t v = 0; v < vocab; ++v) kl += std::exp(dense_lp[v]) * (dense_lp[v] - mode_lp[v]);
      tok_kl[pos] = kl;
      other.pending.erase(it);
    }
  };
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int64_t run = 0; run < runs; ++run) {
    const bool is_mode = run == 0;
    GenerationRequest req;
    req.request_id = is_mode ? "eval" : "eval-dense";
    req.prompt_tokens = ids;
    req.max_tokens = 0;  // scoring only
    req.attention = is_mode ? s.attention : Attention();
    req.kv_policy = is_mode ? policy : KvPolicySpec{};
    ScoredRows& mine = is_mode ? mode_rows : dense_rows;
    ScoredRows& other = is_mode ? dense_rows : mode_rows;
    req.on_prompt_logits = [&, is_mode](int64_t first, std::span<const float> rows) {
      take(mine, other, is_mode, first, rows);
    };
    ASSIGN_OR_RETURN(std::shared_ptr<RequestStream> stream, loop.Submit(std::move(req)));
    streams.push_back(std::move(stream));
  }
  loop.Start();  // after both submissions: admitted in the same step
  for (const auto& stream : streams) {
    RequestOutput out;
    while (stream->Next(&out)) {
      RETURN_IF_ERROR(out.status);
      if (out.finished) break;
    }
  }
  loop.Stop();
  if (mode_rows.next != n - 1 || (compare && dense_rows.next != n - 1)) {
    return absl::InternalError(absl::StrFormat(
        "the engine scored %d of %d positions", std::min(mode_rows.next, compare ? dense_rows.next : mode_rows.next), n - 1));
  }

  PerplexityResult r;
  r.tokens = n - 1;
  r.kv_policy = policy;
  for (double x : tok_nll) r.nll += x;
  double kl_sum = 0;
  for (double x : tok_nll_dense) r.nll_dense += x;
  for (double x : tok_kl) kl_sum += x;
  r.has_dense = dense || compare;
  if (dense) {
    r.nll_dense = r.nll;
    tok_nll_dense = tok_nll;
  }
  r.kl_vs_dense = r.tokens > 0 ? kl_sum / static_cast<double>(r.tokens) : 0.0;
  if (s.bucket > 0) {
    r.buckets = BucketByPosition(tok_nll, tok_nll_dense, tok_kl, /*first_position=*/1, s.bucket);
  }
  return r;
}

}  // namespace longview
