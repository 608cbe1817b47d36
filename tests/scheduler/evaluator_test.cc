#include "scheduler/evaluator.h"

#include <cmath>
#include <cstring>
#include <fstream>

#include "engine/model/safetensors.h"
#include "gtest/gtest.h"
#include "tests/support/attention.h"
#include "tests/support/golden.h"
#include "nlohmann/json.hpp"

namespace longview {
namespace {

const std::string kGolden = std::string(LONGVIEW_TEST_DATA_DIR) + "/golden";

std::unique_ptr<LoadedModel> Load(const std::string& name) {
  auto lm = LoadedModel::Load(kGolden + "/" + name);
  EXPECT_TRUE(lm.ok()) << lm.status();
  return lm.ok() ? std::move(*lm) : nullptr;
}

TEST(EvaluatorTest, AnswerTaskScoresTheGreedyContinuation) {
  auto lm = Load("qwen2");
  ASSERT_TRUE(lm);
  std::ifstream jf(kGolden + "/qwen2/golden.json");
  auto meta = nlohmann::json::parse(jf);
  const std::string prompt = meta["prompts"][1]["prompt"];
  const std::string cont = meta["prompts"][1]["continuation_text"];
  // The first few characters of the transformers continuation are the right answer.
  std::string answer = cont.substr(0, 3);
  EvalSettings s;
  auto good = AnswerTask(*lm, prompt, answer, s);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_TRUE(good->correct) << "output '" << good->output << "' answer '" << answer << "'";
  EXPECT_EQ(good->prompt_tokens, 37);
  auto bad = AnswerTask(*lm, prompt, "zzzz", s);
  ASSERT_TRUE(bad.ok());
  EXPECT_FALSE(bad->correct);
}

// Transformers' next-token NLL of golden prompt 2 of the llama model, by predicted position
// (entry pos: the NLL of token pos given tokens [0, pos); entry 0 unused), and the prompt.
std::vector<double> GoldenTokenNll(GoldenPrompt* prompt) {
  std::vector<GoldenPrompt> golden = ReadGolden(kGolden + "/llama");
  EXPECT_GE(golden.size(), 3u);
  if (golden.size() < 3) return {};
  *prompt = golden[2];
  const int64_t n = static_cast<int64_t>(prompt->ids.size());
  const int64_t vocab = static_cast<int64_t>(prompt->logits.size()) / n;
  std::vector<double> nll(n, 0.0);
  for (int64_t pos = 1; pos < n; ++pos) {
    const float* row = &prompt->logits[(pos - 1) * vocab];
    double m = -1e30, z = 0;
    for (int64_t v = 0; v < vocab; ++v) m = std::max<double>(m, row[v]);
    for (int64_t v = 0; v < vocab; ++v) z += std::exp(row[v] - m);
    nll[pos] = -(row[prompt->ids[pos]] - m - std::log(z));
  }
  return nll;
}

TEST(EvaluatorTest, DensePerplexityMatchesTransformersLogits) {
  auto lm = Load("llama");
  ASSERT_TRUE(lm);
  GoldenPrompt g;
  const std::vector<double> token_nll = GoldenTokenNll(&g);
  ASSERT_FALSE(token_nll.empty());
  const int64_t n = static_cast<int64_t>(g.ids.size());
  double nll = 0;
  for (double x : token_nll) nll += x;
  EvalSettings s;
  s.chunk = 7;  // chunked prefill must not change anything
  auto r = MeasurePerplexity(*lm, g.text, s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tokens, n - 1);
  EXPECT_NEAR(r->nll, nll, 1e-3 * nll);
  EXPECT_EQ(r->kl_vs_dense, 0.0);
}

TEST(EvaluatorTest, SlidingWindowKlIsZeroWhenTheWindowCoversEverythingAndPositiveOtherwise) {
  auto lm = Load("llama");
  ASSERT_TRUE(lm);
  const std::string text =
      "And the earth was without form, and void; and darkness was upon the face of the deep.";
  EvalSettings wide;
  wide.attention = SlidingWindow(1000);
  auto r = MeasurePerplexity(*lm, text, wide);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR(r->kl_vs_dense, 0.0, 1e-9);
  EXPECT_NEAR(r->nll, r->nll_dense, 1e-6 * r->nll);
  EvalSettings narrow = wide;
  narrow.attention = SlidingWindow(4);
  auto q = MeasurePerplexity(*lm, text, narrow);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_GT(q->kl_vs_dense, 1e-3);
  EXPECT_NEAR(q->nll_dense, r->nll_dense, 1e-6 * r->nll_dense);
}

TEST(EvaluatorTest, StreamingLlmIsDenseWhenWideAndDiffersFromThePlainWindowWhenNarrow) {
  auto lm = Load("llama");
  ASSERT_TRUE(lm);
  const std::string text =
      "And the earth was without form, and void; and darkness was upon the face of the deep.";
  EvalSettings wide;
  wide.attention = SlidingWindow(1000, 4);
  auto r = MeasurePerplexity(*lm, text, wide);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR(r->kl_vs_dense, 0.0, 1e-9);  // nothing evicted: dense
  EvalSettings plain = wide;
  plain.attention = SlidingWindow(6);
  EvalSettings sinks = plain;
  sinks.attention = SlidingWindow(6, 2);
  auto p = MeasurePerplexity(*lm, text, plain);
  auto s = MeasurePerplexity(*lm, text, sinks);
  ASSERT_TRUE(p.ok() && s.ok());
  EXPECT_GT(s->kl_vs_dense, 1e-4);   // the window still cuts
  EXPECT_NE(s->kl_vs_dense, p->kl_vs_dense);  // and the sinks change what is attended
}

TEST(EvaluatorTest, BucketByPositionSumsEachBucketsTokens) {
  // Predicted tokens at positions 1..5, buckets of 2: [0,2) holds position 1, [2,4) 2 and 3,
  // [4,6) 4 and 5.
  const std::vector<double> nll = {1, 2, 3, 4, 5}, dense = {1, 1, 1, 1, 2},
                            kl = {0.5, 0.25, 0.75, 0, 1};
  auto b = BucketByPosition(nll, dense, kl, /*first_position=*/1, /*size=*/2);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].start, 0);
  EXPECT_EQ(b[0].end, 2);
  EXPECT_EQ(b[0].tokens, 1);
  EXPECT_EQ(b[0].nll, 1.0);
  EXPECT_EQ(b[1].start, 2);
  EXPECT_EQ(b[1].end, 4);
  EXPECT_EQ(b[1].tokens, 2);
  EXPECT_EQ(b[1].nll, 5.0);
  EXPECT_EQ(b[1].MeanNll(), 2.5);
  EXPECT_EQ(b[1].Perplexity(), std::exp(2.5));
  EXPECT_EQ(b[1].MeanNllDense(), 1.0);
  EXPECT_EQ(b[1].MeanKl(), 0.5);
  EXPECT_EQ(b[2].start, 4);
  EXPECT_EQ(b[2].tokens, 2);
  EXPECT_EQ(b[2].nll, 9.0);
  EXPECT_EQ(b[2].MeanNllDense(), 1.5);
  EXPECT_EQ(b[2].MeanKl(), 0.5);
  // Without dense values (no comparison) the dense sums stay 0; one bucket for everything.
  auto one = BucketByPosition(nll, {}, {}, 1, 100);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].tokens, 5);
  EXPECT_EQ(one[0].nll, 15.0);
  EXPECT_EQ(one[0].nll_dense, 0.0);
  EXPECT_EQ(one[0].kl_sum, 0.0);
}

TEST(EvaluatorTest, DensePerplexityBucketsMatchTransformersPerTokenNll) {
  auto lm = Load("llama");
  ASSERT_TRUE(lm);
  GoldenPrompt g;
  const std::vector<double> token_nll = GoldenTokenNll(&g);
  ASSERT_FALSE(token_nll.empty());
  const int64_t n = static_cast<int64_t>(g.ids.size());
  constexpr int64_t kBucket = 5;
  // Bucket k: the predicted tokens at positions [5k, 5k + 5), i.e. logits rows pos - 1.
  std::vector<double> want((n - 1) / kBucket + 1, 0.0);
  std::vector<int64_t> want_tokens(want.size(), 0);
  for (int64_t pos = 1; pos < n; ++pos) {
    want[pos / kBucket] += token_nll[pos];
    ++want_tokens[pos / kBucket];
  }
  EvalSettings s;
  s.chunk = 7;  // chunk edges do not line up with bucket edges
  s.bucket = kBucket;
  auto r = MeasurePerplexity(*lm, g.text, s);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->buckets.size(), want.size());
  double total = 0;
  for (size_t k = 0; k < want.size(); ++k) {
    const PositionBucket& b = r->buckets[k];
    EXPECT_EQ(b.start, static_cast<int64_t>(k) * kBucket);
    EXPECT_EQ(b.tokens, want_tokens[k]) << k;
    EXPECT_NEAR(b.nll, want[k], 1e-3 * want[k] + 1e-3) << k;
    EXPECT_EQ(b.nll_dense, b.nll);  // dense: its own reference
    EXPECT_EQ(b.kl_sum, 0.0);
    total += b.nll;
  }
  EXPECT_NEAR(total, r->nll, 1e-9 * r->nll);
  EXPECT_TRUE(r->has_dense);
}

TEST(EvaluatorTest, KvPolicyPerplexityIsComparedWithDenseAndDiffersOnlyPastTheBudget) {
  auto lm = Load("llama");
  ASSERT_TRUE(lm);
  const std::string text =
      "And the earth was without form, and void; and darkness was upon the face of the deep.";
  EvalSettings s;
  s.kv = {.policy = "streaming", .sinks = 2};
  s.kv_budget_fraction = 0.4;
  s.chunk = 4;  // the policy evicts between chunks
  s.bucket = 4;
  auto r = MeasurePerplexity(*lm, text, s);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->has_dense);
  EXPECT_EQ(r->kv_policy.kind, KvPolicyKind::kStreaming);
  EXPECT_EQ(r->kv_policy.budget, std::llround(0.4 * static_cast<double>(r->tokens + 1)));
  ASSERT_GE(r->buckets.size(), 3u);
  // Within the budget nothing was evicted: dense there.
  EXPECT_NEAR(r->buckets[0].MeanKl(), 0.0, 1e-6);
  EXPECT_GT(r->buckets.back().MeanKl(), 1e-3);
  EXPECT_GT(r->kl_vs_dense, 0.0);
}

TEST(EvaluatorTest, SlidingWindowBucketsShowKlOnlyPastTheWindowAndDenseCanBeSkipped) {
  auto lm = Load("llama");
  ASSERT_TRUE(lm);
  const std::string text =
      "And the earth was without form, and void; and darkness was upon the face of the deep.";
  EvalSettings s;
  s.attention = SlidingWindow(4);
  s.bucket = 4;
  auto r = MeasurePerplexity(*lm, text, s);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_GE(r->buckets.size(), 3u);
  // The tokens at positions 1..3 are predicted from the first 1..3 tokens, all inside a window
  // of 4: the mode is dense there.
  EXPECT_EQ(r->buckets[0].tokens, 3);
  EXPECT_NEAR(r->buckets[0].MeanKl(), 0.0, 1e-9);
  EXPECT_NEAR(r->buckets[0].nll, r->buckets[0].nll_dense, 1e-6 * r->buckets[0].nll);
  double kl = 0, nll = 0;
  int64_t tokens = 0;
  for (const PositionBucket& b : r->buckets) {
    kl += b.kl_sum;
    nll += b.nll;
    tokens += b.tokens;
  }
  EXPECT_GT(r->buckets.back().MeanKl(), 1e-3);
  EXPECT_EQ(tokens, r->tokens);
  EXPECT_NEAR(kl / static_cast<double>(tokens), r->kl_vs_dense, 1e-9);
  EXPECT_NEAR(nll, r->nll, 1e-9 * r->nll);
  // Without the dense pass: the same mode numbers, no dense ones.
  EvalSettings alone = s;
  alone.compare_dense = false;
  auto q = MeasurePerplexity(*lm, text, alone);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_FALSE(q->has_dense);
  EXPECT_EQ(q->nll, r->nll);
  EXPECT_EQ(q->nll_dense, 0.0);
  ASSERT_EQ(q->buckets.size(), r->buckets.size());
  EXPECT_EQ(q->buckets[1].nll, r->buckets[1].nll);
  EXPECT_EQ(q->buckets[1].kl_sum, 0.0);
  s.bucket = -1;
  EXPECT_NE(ValidateEvalSettings(s).message().find("bucket"), std::string::npos);
}

TEST(EvaluatorTest, InvalidSettingsNameTheField) {
  // The attention fields are parsed by the mode registry (attention_mode_test.cc).
  EvalSettings s;
  s.attention = SlidingWindow(64, 4);
  EXPECT_TRUE(ValidateEvalSettings(s).ok());
  s.kv.policy = "mystery";
  EXPECT_NE(ValidateEvalSettings(s).message().find("kv.policy"), std::string::npos);
  s.kv.policy = "none";
  EXPECT_TRUE(ValidateEvalSettings(s).ok());
  s.kv = {.policy = "h2o"};
  s.kv_budget_fraction = 1.5;
  EXPECT_NE(ValidateEvalSettings(s).message().find("kv.budget_fraction"), std::string::npos);
  s.kv_budget_fraction = 0.25;
  EXPECT_TRUE(ValidateEvalSettings(s).ok());
  absl::StatusOr<KvPolicySpec> p = ResolveKvPolicy(s, 1001);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->budget, 250);
  s.kv.budget = 10;
  EXPECT_NE(ValidateEvalSettings(s).message().find("kv.budget"), std::string::npos);
}

}  // namespace
}  // namespace longview
