// Attention mode hip through the engine loop: a request is served on the CPU backend, its greedy
// tokens and their log-probabilities equal a plain token-by-token decode of the model under the
// same mode (and not full attention's, once pruning starts); a backend that cannot prune refuses
// the request at submit, naming the mode.
#include <algorithm>
#include <cmath>
#include <memory>
#include <span>
#include <vector>

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

// Greedy decode, one Forward per token, every page kept: the tokens and their log-probabilities.
void GreedyByHand(CpuModel& model, const std::vector<int32_t>& prompt, int64_t max_tokens,
                  const Attention& attention, std::vector<int32_t>* tokens,
                  std::vector<float>* logprobs) {
  const int64_t total = static_cast<int64_t>(prompt.size()) + max_tokens;
  BlockTable table(16);
  BlockPool pool(table.BlocksNeeded(total));
  HostKvStorage kv(model.kv_layout(16), pool.num_blocks());
  table.Append(*pool.Allocate(pool.num_blocks()));
  std::vector<float> logits;
  ASSERT_TRUE(model.Forward({prompt, 0, &table}, kv, false, logits, attention).ok());
  for (int64_t pos = static_cast<int64_t>(prompt.size());; ++pos) {
    const auto best = std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (float v : logits) sum += std::exp(static_cast<double>(v) - *best);
    const int32_t tok = static_cast<int32_t>(best - logits.begin());
    tokens->push_back(tok);
    logprobs->push_back(static_cast<float>(-std::log(sum)));
    if (static_cast<int64_t>(tokens->size()) == max_tokens) break;
    ASSERT_TRUE(model.Forward({std::span<const int32_t>(&tok, 1), pos, &table}, kv, false,
                              logits, attention).ok());
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

TEST(EngineLoopHipTest, ServedTokensEqualADecodeByHandUnderTheMode) {
  auto lm = test::GoldenLlama();
  const Attention hip = SmallHip(4, 32, 16, /*block_size=*/1);  // prunes from token 52 on
  EngineLoopOptions o;
  o.max_num_batched_tokens = 64;  // the prompt in five chunks
  EngineLoop loop(lm, o);
  loop.Start();
  auto stream = loop.Submit(HipRequest(hip));
  ASSERT_TRUE(stream.ok()) << stream.status();
  std::vector<int32_t> got;
  std::vector<float> got_lp;
  RequestOutput out;
  absl::Status status;
  while ((*stream)->Next(&out)) {
    for (const SequenceDelta& d : out.deltas) {
      got.insert(got.end(), d.token_ids.begin(), d.token_ids.end());
      for (const TokenLogprob& lp : d.logprobs) got_lp.push_back(lp.logprob);
    }
    status = out.status;
    if (out.finished) break;
  }
  loop.Stop();
  ASSERT_TRUE(status.ok()) << status;
  std::unique_ptr<CpuModel> model = CpuModelOf(*lm);
  std::vector<int32_t> want, full;
  std::vector<float> want_lp, full_lp;
  GreedyByHand(*model, HipRequest(hip).prompt_tokens, 24, hip, &want, &want_lp);
  GreedyByHand(*model, HipRequest(hip).prompt_tokens, 24, FullAttention(), &full, &full_lp);
  EXPECT_EQ(got, want);
  ASSERT_EQ(got_lp.size(), want_lp.size());
  for (size_t i = 0; i < got_lp.size(); ++i) EXPECT_NEAR(got_lp[i], want_lp[i], 1e-4) << i;
  // Pruning changed what the model saw.
  EXPECT_NE(want_lp, full_lp);
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
