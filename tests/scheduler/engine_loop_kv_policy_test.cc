// KV budget policies through the engine loop on the CPU backend (kvcache/kv_policy.h): what a
// decode step reads after evictions and compactions, the pages a sequence holds, the metrics, and
// the requests refused.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "engine/cpu/cpu_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvcache/host_kv_storage.h"
#include "scheduler/engine_loop.h"
#include "tests/scheduler/fake_runner.h"
#include "tests/support/attention.h"
#include "tests/support/golden_model.h"

namespace longview {
namespace {

using ::testing::HasSubstr;
using Ids = std::vector<int32_t>;

std::shared_ptr<const LoadedModel> Golden() { return test::GoldenLlama(); }

using test::RandomPrompt;

KvPolicySpec Policy(const KvPolicyRequest& r) {
  absl::StatusOr<KvPolicySpec> s = ParseKvPolicy(r, "kv.");
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : KvPolicySpec{};
}

struct PolicyRun {
  Ids tokens;
  std::vector<float> logprobs;
  int64_t max_pages_after_prompt = 0;
  EngineMetrics metrics;
  absl::Status status;
};

// Greedy with penalties (the golden model repeats itself otherwise), the chosen tokens' logprobs.
PolicyRun Generate(const Ids& prompt, int64_t max_tokens, std::optional<KvPolicySpec> policy,
             int64_t page_size = 4, int64_t chunk = 2048) {
  PolicyRun run;
  EngineLoopOptions o;
  o.page_size = page_size;
  o.num_kv_pages = 256;
  o.max_num_batched_tokens = chunk;
  o.on_step = [&](const std::string&, int64_t computed, int64_t pages) {
    if (computed > static_cast<int64_t>(prompt.size())) {
      run.max_pages_after_prompt = std::max(run.max_pages_after_prompt, pages);
    }
  };
  EngineLoop loop(Golden(), o);
  loop.Start();
  GenerationRequest r;
  r.request_id = "policy";
  r.prompt_tokens = prompt;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  r.sampling.repetition_penalty = 1.5;
  r.sampling.frequency_penalty = 1.5;
  r.ignore_eos = true;
  r.logprobs = 0;
  r.kv_policy = policy;
  auto stream = loop.Submit(std::move(r));
  if (!stream.ok()) {
    run.status = stream.status();
    return run;
  }
  RequestOutput out;
  while ((*stream)->Next(&out)) {
    for (const SequenceDelta& d : out.deltas) {
      run.tokens.insert(run.tokens.end(), d.token_ids.begin(), d.token_ids.end());
      for (const TokenLogprob& lp : d.logprobs) run.logprobs.push_back(lp.logprob);
    }
    run.status = out.status;
    if (out.finished) break;
  }
  loop.Stop();
  run.metrics = loop.Snapshot();
  return run;
}

int64_t Evicted(const EngineMetrics& m, std::string_view policy) {
  for (const auto& p : m.kv_policies) {
    if (p.policy == policy) return p.tokens_evicted;
  }
  return -1;
}

int64_t PagesFreed(const EngineMetrics& m, std::string_view policy) {
  for (const auto& p : m.kv_policies) {
    if (p.policy == policy) return p.pages_freed;
  }
  return -1;
}

// The oracle: the same model over an uncompacted cache (every token at its own slot), each decode
// query reading the sinks and the most recent tokens at their own positions, as StreamingLLM's
// policy keeps them. The engine's run evicts and compacts; the logprobs must agree.
TEST(EngineLoopKvPolicyTest, StreamingReadsExactlyTheSinksAndTheRecentTokens) {
  const int64_t budget = 24, sinks = 4, ps = 4, max_tokens = 30;
  const Ids prompt = RandomPrompt(90, 5);
  const PolicyRun got = Generate(prompt, max_tokens,
                           Policy({.policy = "streaming", .budget = budget, .sinks = sinks}), ps);
  ASSERT_TRUE(got.status.ok()) << got.status;
  ASSERT_EQ(static_cast<int64_t>(got.tokens.size()), max_tokens);
  ASSERT_EQ(got.logprobs.size(), got.tokens.size());

  const LoadedModel& lm = *Golden();
  auto model = CpuModel::Create(lm.config, lm.weights);
  ASSERT_TRUE(model.ok()) << model.status();
  const int64_t total = static_cast<int64_t>(prompt.size()) + max_tokens;
  HostKvStorage kv((*model)->kv_layout(ps), static_cast<int32_t>((total + ps - 1) / ps));
  Ids table((total + ps - 1) / ps);
  std::iota(table.begin(), table.end(), 0);
  Ids seq = prompt;
  seq.insert(seq.end(), got.tokens.begin(), got.tokens.end());
  std::vector<float> logits;
  auto chosen_logprob = [&](int32_t token) {
    const int64_t vocab = lm.config.vocab_size;
    const float* row = logits.data() + logits.size() - vocab;
    double m = *std::max_element(row, row + vocab), z = 0;
    for (int64_t v = 0; v < vocab; ++v) z += std::exp(static_cast<double>(row[v]) - m);
    return static_cast<double>(row[token]) - m - std::log(z);
  };
  // The prompt: everything (no eviction before the first step).
  BatchSequence first{.tokens = std::span<const int32_t>(prompt),
                      .start_pos = 0,
                      .block_ids = table,
                      .need_logits = true};
  ASSERT_TRUE((*model)->ForwardBatch(std::span<const BatchSequence>(&first, 1), kv, logits).ok());
  EXPECT_NEAR(chosen_logprob(got.tokens[0]), got.logprobs[0], 1e-4);
  for (int64_t i = 1; i < max_tokens; ++i) {
    const int64_t end = static_cast<int64_t>(prompt.size()) + i - 1;  // the query's token
    KvSelection sel;
    AppendTokenRange(table, ps, 0, sinks, 0, sel);
    const int64_t recent = end - (budget - sinks);
    AppendTokenRange(table, ps, recent, end + 1 - recent, recent, sel);
    BatchSequence step{.tokens = std::span<const int32_t>(&seq[end], 1),
                       .start_pos = end,
                       .block_ids = table,
                       .need_logits = true,
                       .selection = &sel};
    ASSERT_TRUE((*model)->ForwardBatch(std::span<const BatchSequence>(&step, 1), kv, logits).ok());
    EXPECT_NEAR(chosen_logprob(got.tokens[i]), got.logprobs[i], 1e-4) << "token " << i;
  }
  // Memory: the budget's pages, plus the one being written and one partly packed.
  EXPECT_LE(got.max_pages_after_prompt, (budget + ps - 1) / ps + 2);
  EXPECT_EQ(Evicted(got.metrics, "streaming"), total - 1 - budget - 1);
  EXPECT_GT(PagesFreed(got.metrics, "streaming"), 0);
}

TEST(EngineLoopKvPolicyTest, WithinBudgetEveryPolicyMatchesNoPolicy) {
  const Ids prompt = RandomPrompt(60, 9);
  const PolicyRun dense = Generate(prompt, 20, std::nullopt);
  ASSERT_TRUE(dense.status.ok()) << dense.status;
  for (const char* name : {"streaming", "h2o", "snapkv", "lazy"}) {
    const PolicyRun got = Generate(prompt, 20, Policy({.policy = name, .budget = 200}));
    ASSERT_TRUE(got.status.ok()) << name << ": " << got.status;
    EXPECT_EQ(got.tokens, dense.tokens) << name;
    for (size_t i = 0; i < got.logprobs.size(); ++i) {
      EXPECT_NEAR(got.logprobs[i], dense.logprobs[i], 1e-4) << name << " token " << i;
    }
    EXPECT_EQ(Evicted(got.metrics, name), 0) << name;
  }
}

TEST(EngineLoopKvPolicyTest, EveryPolicyEvictsToItsBudgetAndGivesPagesBack) {
  // A prompt prefilled in chunks of 32 (h2o, lazy and streaming evict between chunks; snapkv at
  // the prompt's end), then decoding.
  const Ids prompt = RandomPrompt(160, 11);
  const int64_t ps = 4, budget = 40;
  for (const char* name : {"streaming", "h2o", "snapkv", "lazy"}) {
    const PolicyRun got = Generate(prompt, 24, Policy({.policy = name, .budget = budget}), ps, 32);
    ASSERT_TRUE(got.status.ok()) << name << ": " << got.status;
    EXPECT_EQ(got.tokens.size(), 24u) << name;
    EXPECT_GE(Evicted(got.metrics, name), 160 - budget) << name;
    EXPECT_GT(PagesFreed(got.metrics, name), 0) << name;
    // Held while decoding: the budget (snapkv keeps what it decodes; lazy may run W over)
    // packed, plus what arrived since the last eviction, plus the page being written.
    const int64_t slack = std::string(name) == "snapkv" ? 24 : std::string(name) == "lazy" ? 10 : 0;
    EXPECT_LE(got.max_pages_after_prompt, (budget + slack + ps - 1) / ps + 2) << name;
  }
}

TEST(EngineLoopKvPolicyTest, RequestsAPolicyCannotServeAreRefusedNamingTheField) {
  EngineLoop loop(Golden(), EngineLoopOptions{});
  GenerationRequest r;
  r.request_id = "x";
  r.prompt_tokens = RandomPrompt(10, 1);
  r.max_tokens = 4;
  r.kv_policy = Policy({.policy = "h2o", .budget = 8});
  r.n = 2;
  absl::StatusOr<std::shared_ptr<RequestStream>> s = loop.Submit(r);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("n must be 1 with kv.policy h2o"));
  r.n = 1;
  r.attention = SlidingWindow(8, 2);
  s = loop.Submit(r);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("kv.policy h2o needs attention mode dense, got sliding_window"));

  // A backend without per-key statistics.
  EngineLoopOptions o;
  o.runner = std::make_shared<test::FakeRunner>(64, 16, static_cast<int32_t>(Golden()->config.vocab_size));
  o.num_kv_pages = 64;
  EngineLoop fake(Golden(), o);
  r.attention = Attention();
  s = fake.Submit(r);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("kv.policy h2o is not available"));
}

}  // namespace
}  // namespace longview
