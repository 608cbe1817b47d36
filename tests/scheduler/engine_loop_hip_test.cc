// Attention mode hip through the engine loop: a request is served on the CPU backend, its greedy
// tokens and their log-probabilities equal a plain token-by-token decode of the model under the
// same mode (and not full attention's, once pruning starts); with refresh intervals the decode
// masks are kept per sequence between steps, as a decode by hand that keeps them (and not as
// pruning afresh); a dense layer the model lacks and a backend that cannot prune are refused at
// submit, naming what is wrong.
#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/attention/hip.h"
#include "engine/cpu/cpu_model_runner.h"
#include "gtest/gtest.h"
#include "kvcache/block_pool.h"
#include "kvcache/block_table.h"
#include "kvcache/host_kv_storage.h"
#include "scheduler/engine_loop.h"
#include "tests/support/attention.h"
#include "tests/support/cpu_model_of.h"
#include "tests/support/golden_model.h"

namespace longview {
namespace {

// Greedy decode, one step per token, every page kept: the tokens and their log-probabilities.
// With `masks`, mode hip's decode steps keep their masks there (as the CPU runner does).
void GreedyByHand(CpuModel& model, const std::vector<int32_t>& prompt, int64_t max_tokens,
                  const Attention& attention, std::vector<int32_t>* tokens,
                  std::vector<float>* logprobs, HipSequenceMasks* masks = nullptr) {
  const int64_t total = static_cast<int64_t>(prompt.size()) + max_tokens;
  BlockTable table(16);
  BlockPool pool(table.BlocksNeeded(total));
  HostKvStorage kv(model.kv_layout(16), pool.num_blocks());
  table.Append(*pool.Allocate(pool.num_blocks()));
  std::vector<float> logits;
  auto step = [&](std::span<const int32_t> ids, int64_t start) {
    const BatchSequence seq{.tokens = ids,
                            .start_pos = start,
                            .block_ids = table.blocks(),
                            .need_logits = true,
                            .attention = attention,
                            .hip_masks = masks};
    return model.ForwardBatch(std::span<const BatchSequence>(&seq, 1), kv, logits);
  };
  ASSERT_TRUE(step(prompt, 0).ok());
  for (int64_t pos = static_cast<int64_t>(prompt.size());; ++pos) {
    const auto best = std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (float v : logits) sum += std::exp(static_cast<double>(v) - *best);
    const int32_t tok = static_cast<int32_t>(best - logits.begin());
    tokens->push_back(tok);
    logprobs->push_back(static_cast<float>(-std::log(sum)));
    if (static_cast<int64_t>(tokens->size()) == max_tokens) break;
    ASSERT_TRUE(step(std::span<const int32_t>(&tok, 1), pos).ok());
  }
}

GenerationRequest HipRequest(const Attention& attention) {
  GenerationRequest r;
  r.request_id = "hip";
  r.prompt_tokens = test::RandomPrompt(300, 21);
  r.max_tokens = 24;
  r.ignore_eos = true;
  r.sampling.temperature = 0;
  r.logprobs = 1;
  r.attention = attention;
  return r;
}

// Serves HipRequest(attention) (the prompt in five chunks): its tokens and log-probabilities.
void Serve(std::shared_ptr<const LoadedModel> lm, const Attention& attention,
           std::vector<int32_t>* got, std::vector<float>* got_lp) {
  EngineLoopOptions o;
  o.max_num_batched_tokens = 64;
  EngineLoop loop(lm, o);
  loop.Start();
  auto stream = loop.Submit(HipRequest(attention));
  ASSERT_TRUE(stream.ok()) << stream.status();
  RequestOutput out;
  absl::Status status;
  while ((*stream)->Next(&out)) {
    for (const SequenceDelta& d : out.deltas) {
      got->insert(got->end(), d.token_ids.begin(), d.token_ids.end());
      for (const TokenLogprob& lp : d.logprobs) got_lp->push_back(lp.logprob);
    }
    status = out.status;
    if (out.finished) break;
  }
  loop.Stop();
  ASSERT_TRUE(status.ok()) << status;
}

void ExpectSame(const std::vector<int32_t>& got, const std::vector<float>& got_lp,
                const std::vector<int32_t>& want, const std::vector<float>& want_lp) {
  EXPECT_EQ(got, want);
  ASSERT_EQ(got_lp.size(), want_lp.size());
  for (size_t i = 0; i < got_lp.size(); ++i) EXPECT_NEAR(got_lp[i], want_lp[i], 1e-4) << i;
}

TEST(EngineLoopHipTest, ServedTokensEqualADecodeByHandUnderTheMode) {
  auto lm = test::GoldenLlama();
  const Attention hip = SmallHip(4, 32, 16, /*block_size=*/1);  // prunes from token 36 on
  std::vector<int32_t> got;
  std::vector<float> got_lp;
  Serve(lm, hip, &got, &got_lp);
  std::unique_ptr<CpuModel> model = CpuModelOf(*lm);
  std::vector<int32_t> want, full;
  std::vector<float> want_lp, full_lp;
  GreedyByHand(*model, HipRequest(hip).prompt_tokens, 24, hip, &want, &want_lp);
  GreedyByHand(*model, HipRequest(hip).prompt_tokens, 24, FullAttention(), &full, &full_lp);
  ExpectSame(got, got_lp, want, want_lp);
  // Pruning changed what the model saw.
  EXPECT_NE(want_lp, full_lp);
}

TEST(EngineLoopHipTest, DecodeMasksAreKeptBetweenRefreshes) {
  auto lm = test::GoldenLlama();
  const Attention hip = SmallHip(4, 32, 16, /*block_size=*/1, /*refresh=*/{4, 2},
                                 /*dense_layers=*/{1});
  std::vector<int32_t> got;
  std::vector<float> got_lp;
  Serve(lm, hip, &got, &got_lp);
  std::unique_ptr<CpuModel> model = CpuModelOf(*lm);
  HipSequenceMasks masks;
  std::vector<int32_t> want, afresh;
  std::vector<float> want_lp, afresh_lp;
  GreedyByHand(*model, HipRequest(hip).prompt_tokens, 24, hip, &want, &want_lp, &masks);
  GreedyByHand(*model, HipRequest(hip).prompt_tokens, 24, hip, &afresh, &afresh_lp);
  ExpectSame(got, got_lp, want, want_lp);
  ASSERT_EQ(static_cast<int64_t>(masks.layers.size()), lm->config.num_hidden_layers);
  EXPECT_EQ(masks.layers[0].outputs.size(), 2u);
  // The first decoded token is the prompt's; reused masks then change what later steps read.
  EXPECT_EQ(want_lp[0], afresh_lp[0]);
  EXPECT_NE(want_lp, afresh_lp);
}

TEST(EngineLoopHipTest, ADenseLayerTheModelLacksIsRefused) {
  auto lm = test::GoldenLlama();
  const int64_t layers = lm->config.num_hidden_layers;
  EngineLoop loop(lm, EngineLoopOptions{});
  auto refused = loop.Submit(HipRequest(SmallHip(4, 32, 16, 8, {1, 1}, {0, layers})));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(refused.status().message())
                .rfind(absl::StrFormat("attention.dense_layers[1] = %d ", layers), 0),
            0u)
      << refused.status();
  EXPECT_TRUE(loop.Submit(HipRequest(SmallHip(4, 32, 16, 8, {1, 1}, {0, layers - 1}))).ok());
  // The default names the first four layers: a smaller model uses those it has.
  ASSERT_LT(layers, 4);
  EXPECT_TRUE(loop.Submit(HipRequest(TestAttention(HipAttention{}))).ok());
  loop.Stop();
}

// The CPU runner, saying it cannot prune.
class NoHipRunner final : public ModelRunner {
 public:
  explicit NoHipRunner(std::unique_ptr<ModelRunner> inner) : inner_(std::move(inner)) {}
  KvStorage& kv_storage() override { return inner_->kv_storage(); }
  int64_t vocab_size() const override { return inner_->vocab_size(); }
  absl::Status Execute(const StepPlan& plan, StepResult& result) override {
    return inner_->Execute(plan, result);
  }

 private:
  std::unique_ptr<ModelRunner> inner_;
};

TEST(EngineLoopHipTest, ABackendThatCannotPruneRefusesAtSubmit) {
  auto lm = test::GoldenLlama();
  EngineLoopOptions o;
  o.num_kv_pages = 64;
  auto runner = CpuModelRunner::Create(*lm, 64, o.page_size);
  ASSERT_TRUE(runner.ok()) << runner.status();
  o.runner = std::make_shared<NoHipRunner>(std::move(*runner));
  EngineLoop loop(lm, o);
  auto refused = loop.Submit(HipRequest(SmallHip(4, 32, 16)));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(refused.status().message()).rfind("attention.mode hip", 0), 0u)
      << refused.status();
  GenerationRequest plain = HipRequest(Attention());
  EXPECT_TRUE(loop.Submit(plain).ok());  // the same request in dense is taken
  EXPECT_EQ(loop.AttentionModeNames(), (std::vector<std::string>{"dense", "sliding_window"}));
  loop.Stop();
}

}  // namespace
}  // namespace longview
