#include "engine/evaluator.h"

#include <cmath>
#include <cstring>
#include <fstream>

#include "engine/safetensors.h"
#include "gtest/gtest.h"
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

TEST(EvaluatorTest, DensePerplexityMatchesTransformersLogits) {
  auto lm = Load("llama");
  ASSERT_TRUE(lm);
  std::ifstream jf(kGolden + "/llama/golden.json");
  auto meta = nlohmann::json::parse(jf);
  auto st = SafetensorsArchive::OpenFile(kGolden + "/llama/golden.safetensors");
  ASSERT_TRUE(st.ok());
  const TensorView* lt = (*st)->Find("p2.logits");
  const TensorView* it = (*st)->Find("p2.input_ids");
  std::vector<float> logits(lt->NumElements());
  ASSERT_TRUE(lt->ToFloat32(logits.data()).ok());
  const int64_t n = it->NumElements(), vocab = lt->shape[1];
  double nll = 0;
  for (int64_t i = 0; i + 1 < n; ++i) {
    int64_t next;
    std::memcpy(&next, it->data + (i + 1) * 8, 8);
    double m = -1e30, z = 0;
    for (int64_t v = 0; v < vocab; ++v) m = std::max<double>(m, logits[i * vocab + v]);
    for (int64_t v = 0; v < vocab; ++v) z += std::exp(logits[i * vocab + v] - m);
    nll -= logits[i * vocab + next] - m - std::log(z);
  }
  EvalSettings s;
  s.chunk = 7;  // chunked prefill must not change anything
  auto r = MeasurePerplexity(*lm, meta["prompts"][2]["prompt"].get<std::string>(), s);
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
  wide.attention.mode = "sliding_window";
  wide.attention.window = 1000;
  auto r = MeasurePerplexity(*lm, text, wide);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR(r->kl_vs_dense, 0.0, 1e-9);
  EXPECT_NEAR(r->nll, r->nll_dense, 1e-6 * r->nll);
  EvalSettings narrow = wide;
  narrow.attention.window = 4;
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
  wide.attention = {.mode = "sliding_window", .window = 1000, .sinks = 4};
  auto r = MeasurePerplexity(*lm, text, wide);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR(r->kl_vs_dense, 0.0, 1e-9);  // nothing evicted: dense
  EvalSettings plain = wide;
  plain.attention.window = 6;
  plain.attention.sinks = 0;
  EvalSettings sinks = plain;
  sinks.attention.sinks = 2;
  auto p = MeasurePerplexity(*lm, text, plain);
  auto s = MeasurePerplexity(*lm, text, sinks);
  ASSERT_TRUE(p.ok() && s.ok());
  EXPECT_GT(s->kl_vs_dense, 1e-4);   // the window still cuts
  EXPECT_NE(s->kl_vs_dense, p->kl_vs_dense);  // and the sinks change what is attended
}

TEST(EvaluatorTest, InvalidSettingsNameTheField) {
  EvalSettings s;
  s.attention.mode = "hyperattention";
  EXPECT_NE(ValidateEvalSettings(s).message().find("attention.mode"), std::string::npos);
  s.attention.mode = "sliding_window";
  s.attention.window = 0;
  EXPECT_NE(ValidateEvalSettings(s).message().find("attention.window"), std::string::npos);
  s.attention.window = 64;
  s.attention.sinks = 65;
  EXPECT_NE(ValidateEvalSettings(s).message().find("attention.sinks"), std::string::npos);
  s.attention.sinks = -1;
  EXPECT_NE(ValidateEvalSettings(s).message().find("attention.sinks"), std::string::npos);
  s.attention.sinks = 4;
  EXPECT_TRUE(ValidateEvalSettings(s).ok());
  s.kv.policy = "mystery";
  EXPECT_NE(ValidateEvalSettings(s).message().find("kv.policy"), std::string::npos);
  s.kv.policy = "none";
  EXPECT_TRUE(ValidateEvalSettings(s).ok());
}

}  // namespace
}  // namespace longview
