#include "scheduler/evaluator.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_format.h"
#include "kvcache/block_pool.h"

namespace longview {

absl::Status ValidateEvalSettings(const EvalSettings& s) {
  const AttentionSettings& a = s.attention;
  if (a.mode == "dense") {
    if (a.window != 0 || a.sinks != 0) {
      return absl::InvalidArgumentError("attention.window and attention.sinks need mode sliding_window");
    }
  } else if (a.mode == "sliding_window") {
    if (a.window < 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("attention.window must be at least 1, got %d", a.window));
    }
    if (a.sinks < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("attention.sinks must be >= 0, got %d", a.sinks));
    }
    if (a.sinks > a.window) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "attention.sinks (%d) must not exceed attention.window (%d)", a.sinks, a.window));
    }
  } else {
    return absl::InvalidArgumentError(absl::StrFormat(
        "attention.mode '%s' is not supported (supported: dense, sliding_window)", a.mode));
  }
  if (s.kv.policy != "none") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "kv.policy '%s' is not supported (supported: none)", s.kv.policy));
  }
  if (s.kv.budget != 0) {
    return absl::InvalidArgumentError("kv.budget needs a KV policy other than none");
  }
  if (s.page_size < 1) return absl::InvalidArgumentError("page_size must be at least 1");
  if (s.chunk < 1) return absl::InvalidArgumentError("chunk must be at least 1");
  if (s.bucket < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("bucket must be >= 0, got %d", s.bucket));
  }
  return absl::OkStatus();
}

absl::StatusOr<ForwardOptions> ForwardOptionsFor(const EvalSettings& s) {
  RETURN_IF_ERROR(ValidateEvalSettings(s));
  ForwardOptions fo;
  if (s.attention.mode == "sliding_window") {
    fo.window_override = s.attention.window;
    fo.sinks = s.attention.sinks;  // > 0: StreamingLLM, positions re-assigned
  }
  return fo;
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
  ASSIGN_OR_RETURN(ForwardOptions fo, ForwardOptionsFor(s));
  GenerateOptions opt;
  opt.sampling.temperature = 0;
  opt.page_size = s.page_size;
  opt.forward = fo;
  std::string want(Trim(answer));
  opt.max_tokens = static_cast<int64_t>(lm.tokenizer->Encode(want, false).size()) + 4;
  ASSIGN_OR_RETURN(GenerateResult r, Generate(lm, prompt, opt));
  AnswerResult out;
  out.output = r.text;
  out.prompt_tokens = static_cast<int64_t>(r.prompt_tokens.size());
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

// A sequence's pages for a whole text.
struct Pages {
  Pages(const CpuModel& model, int64_t page_size, int64_t tokens)
      : table(page_size),
        pool(table.BlocksNeeded(tokens)),
        kv(model.kv_layout(page_size), pool.num_blocks()) {
    auto ids = pool.Allocate(pool.num_blocks());
    if (ids) table.Append(*ids);
  }
  BlockTable table;
  BlockPool pool;
  HostKvStorage kv;
};

}  // namespace

absl::StatusOr<PerplexityResult> MeasurePerplexity(const LoadedModel& lm, std::string_view text,
                                                   const EvalSettings& s) {
  ASSIGN_OR_RETURN(ForwardOptions fo, ForwardOptionsFor(s));
  std::vector<int32_t> ids = lm.tokenizer->Encode(text);
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < 2) return absl::InvalidArgumentError("perplexity text must have at least 2 tokens");
  if (n > lm.config.max_position_embeddings && s.attention.mode == "dense") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "text has %d tokens, more than the model's context of %d", n,
        lm.config.max_position_embeddings));
  }
  const bool dense = s.attention.mode == "dense";
  const bool compare = !dense && s.compare_dense;
  ASSIGN_OR_RETURN(std::unique_ptr<CpuModel> cpu_model, CpuModel::Create(lm.config, lm.weights));
  CpuModel& model = *cpu_model;
  Pages mode_pages(model, s.page_size, n);
  std::unique_ptr<Pages> dense_pages;
  if (compare) dense_pages = std::make_unique<Pages>(model, s.page_size, n);
  const int64_t vocab = lm.config.vocab_size;
  PerplexityResult r;
  std::vector<float> logits, dense_logits;
  std::vector<double> lp, lp_dense;
  // Per predicted token (the token at position i + 1).
  std::vector<double> tok_nll, tok_nll_dense, tok_kl;
  tok_nll.reserve(n - 1);
  for (int64_t start = 0; start < n; start += s.chunk) {
    const int64_t len = std::min(s.chunk, n - start);
    std::span<const int32_t> part(ids.data() + start, len);
    RETURN_IF_ERROR(model.Forward({part, start, &mode_pages.table}, mode_pages.kv, true, logits, fo));
    if (compare) {
      RETURN_IF_ERROR(model.Forward({part, start, &dense_pages->table}, dense_pages->kv, true,
                                    dense_logits));
    }
    for (int64_t i = 0; i < len && start + i + 1 < n; ++i) {
      const int32_t next = ids[start + i + 1];
      LogSoftmax(&logits[i * vocab], vocab, lp);
      tok_nll.push_back(-lp[next]);
      if (compare) {
        LogSoftmax(&dense_logits[i * vocab], vocab, lp_dense);
        tok_nll_dense.push_back(-lp_dense[next]);
        double kl = 0;
        for (int64_t v = 0; v < vocab; ++v) kl += std::exp(lp_dense[v]) * (lp_dense[v] - lp[v]);
        tok_kl.push_back(kl);
      }
    }
  }
  r.tokens = static_cast<int64_t>(tok_nll.size());
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
