#include "scheduler/scheduler.h"

#include <algorithm>
#include <iostream>
#include <map>
#include <set>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "tests/scheduler/fake_runner.h"

namespace longview {
namespace {

using Ids = std::vector<int32_t>;
using test::FakeNextToken;
using test::FakeRunner;

constexpr int32_t kVocab = 97;

Ids ToVec(std::span<const int32_t> s) { return Ids(s.begin(), s.end()); }

Ids Prompt(int32_t len, int32_t first) {
  Ids p(len);
  std::iota(p.begin(), p.end(), first);
  for (int32_t& t : p) t %= kVocab;
  return p;
}

// Greedy output without any scheduler: what every run must reproduce. Choice i of a forked
// request shifts its first token by i (so siblings differ).
Ids Reference(const Ids& prompt, int64_t max_tokens, int32_t choice = 0) {
  Ids tokens = prompt, out;
  for (int64_t i = 0; i < max_tokens; ++i) {
    int32_t t = FakeNextToken(tokens, kVocab);
    if (i == 0) t = (t + choice) % kVocab;
    tokens.push_back(t);
    out.push_back(t);
  }
  return out;
}

// Drives Scheduler + KvCacheManager + FakeRunner the way the engine loop does.
struct Harness {
  // With num_state_slots > 0 every sequence holds a state slot the fake runner checks.
  Harness(int32_t num_blocks, int64_t page_size, SchedulerOptions o, bool prefix_caching = true,
          int32_t num_state_slots = 0)
      : kv({.num_blocks = num_blocks,
            .page_size = page_size,
            .enable_prefix_caching = prefix_caching,
            .state_bytes_per_seq = num_state_slots > 0 ? 8 : 0,
            .num_state_slots = num_state_slots}),
        sched(o, &kv),
        runner(num_blocks, page_size, kVocab, num_state_slots) {}

  int64_t Add(const Ids& prompt, int64_t max_tokens, int32_t num_forks = 0) {
    const int64_t id = sched.AddSequence({.prompt = prompt, .num_forks = num_forks});
    max_tokens_[id] = max_tokens;
    choice_[id] = 0;
    added_at_[id] = steps;
    return id;
  }

  void Step() {
    plan = sched.Schedule();
    ASSERT_LE(plan.num_tokens, sched.options().max_num_batched_tokens);
    absl::StatusOr<StepPlan> s = sched.Apply(plan);
    ASSERT_TRUE(s.ok()) << s.status();
    step = *std::move(s);
    ASSERT_LE(step.NumTokens(), sched.options().max_num_batched_tokens);
    ASSERT_LE(sched.NumRunning(), sched.options().max_num_seqs);
    ++steps;
    if (step.empty()) return;
    StepResult result;
    ASSERT_TRUE(runner.Execute(step, result).ok());
    for (size_t i = 0; i < step.seqs.size(); ++i) {
      if (!step.seqs[i].need_logits) continue;
      const int64_t id = step.seqs[i].seq_id;
      std::vector<int64_t> targets{id};
      int32_t next_choice = 1;
      while (sched.Get(id)->num_pending_forks > 0) {
        const absl::StatusOr<int64_t> forked = sched.Fork(id);
        ASSERT_TRUE(forked.ok()) << forked.status();
        const int64_t child = *forked;
        max_tokens_[child] = max_tokens_[id];
        choice_[child] = next_choice++;
        added_at_[child] = added_at_[id];
        targets.push_back(child);
      }
      auto row = result.Row(i);
      const int32_t greedy =
          static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
      for (int64_t t : targets) {
        Ids& out = outputs[t];
        const int32_t tok = out.empty() ? (greedy + choice_[t]) % kVocab : greedy;
        out.push_back(tok);
        sched.AppendToken(t, tok);
        if (static_cast<int64_t>(out.size()) >= max_tokens_[t]) {
          ASSERT_TRUE(sched.Finish(t).ok());
          finished_after[t] = steps - added_at_[t];
        }
      }
    }
  }

  void RunToCompletion(int64_t max_steps) {
    while (sched.HasWork() && steps < max_steps) {
      Step();
      if (::testing::Test::HasFatalFailure()) return;
    }
    EXPECT_FALSE(sched.HasWork()) << "not done after " << max_steps << " steps";
  }

  KvCacheManager kv;
  Scheduler sched;
  FakeRunner runner;
  SchedulePlan plan;
  StepPlan step;
  int64_t steps = 0;
  std::map<int64_t, Ids> outputs;
  std::map<int64_t, int64_t> finished_after;  // steps from submission to finish
  std::map<int64_t, int64_t> max_tokens_, added_at_;
  std::map<int64_t, int32_t> choice_;
};

TEST(SchedulerTest, ChunkedPrefillThenDecodeUsesExactBlocks) {
  Harness h(6, 4, {.max_num_batched_tokens = 6});
  const Ids prompt = Prompt(10, 10);
  const int64_t a = h.Add(prompt, 4);

  h.Step();  // prefill chunk of 6
  ASSERT_EQ(h.step.seqs.size(), 1u);
  EXPECT_EQ(h.step.seqs[0].start_pos, 0);
  EXPECT_EQ(h.step.seqs[0].token_ids, Ids(prompt.begin(), prompt.begin() + 6));
  EXPECT_EQ(h.step.seqs[0].block_ids, (Ids{0, 1}));
  EXPECT_FALSE(h.step.seqs[0].need_logits);
  EXPECT_EQ(h.sched.NumRunning(), 1);
  EXPECT_EQ(h.sched.NumWaiting(), 0);

  h.Step();  // the last 4 prompt tokens, first output token
  EXPECT_EQ(h.step.seqs[0].start_pos, 6);
  EXPECT_EQ(h.step.seqs[0].block_ids, (Ids{0, 1, 2}));
  EXPECT_TRUE(h.step.seqs[0].need_logits);
  EXPECT_EQ(h.kv.FreeBlockIds(), (Ids{3, 4, 5}));

  h.Step();  // pos 10
  h.Step();  // pos 11: block 2 is full now
  EXPECT_EQ(h.step.seqs[0].token_ids.size(), 1u);
  EXPECT_EQ(h.step.seqs[0].block_ids, (Ids{0, 1, 2}));
  EXPECT_TRUE(h.kv.IsCached(2));
  h.Step();  // pos 12 needs block 3
  EXPECT_EQ(h.step.seqs[0].start_pos, 12);
  EXPECT_EQ(h.step.seqs[0].block_ids, (Ids{0, 1, 2, 3}));
  EXPECT_FALSE(h.sched.HasWork());
  EXPECT_EQ(h.outputs[a], Reference(prompt, 4));
  // Freed last block first: the prefix is evicted last.
  EXPECT_EQ(h.kv.FreeBlockIds(), (Ids{4, 5, 3, 2, 1, 0}));
  for (int32_t b = 0; b < 6; ++b) EXPECT_EQ(h.kv.RefCount(b), 0);
}

TEST(SchedulerTest, ScheduleHasNoSideEffectsUntilApply) {
  Harness h(8, 4, {.max_num_batched_tokens = 5});
  h.Add(Prompt(9, 1), 3);
  h.Add(Prompt(3, 50), 3);
  h.Step();
  const Ids free_before = h.kv.FreeBlockIds();
  const int64_t waiting = h.sched.NumWaiting(), running = h.sched.NumRunning();
  SchedulePlan p1 = h.sched.Schedule();
  SchedulePlan p2 = h.sched.Schedule();
  EXPECT_EQ(h.kv.FreeBlockIds(), free_before);
  EXPECT_EQ(h.sched.NumWaiting(), waiting);
  EXPECT_EQ(h.sched.NumRunning(), running);
  EXPECT_EQ(h.kv.prefix_cache_queries(), 9);
  ASSERT_EQ(p1.entries.size(), p2.entries.size());
  for (size_t i = 0; i < p1.entries.size(); ++i) {
    EXPECT_EQ(p1.entries[i].seq, p2.entries[i].seq);
    EXPECT_EQ(p1.entries[i].num_new_tokens, p2.entries[i].num_new_tokens);
  }
  ASSERT_TRUE(h.sched.Apply(p1).ok());
  EXPECT_NE(h.kv.FreeBlockIds(), free_before);
}

TEST(SchedulerTest, DecodesFirstThenPrefillWithinTheBudget) {
  Harness h(32, 4, {.max_num_batched_tokens = 8});
  const int64_t a = h.Add(Prompt(3, 1), 10);
  h.Step();  // a: whole prompt
  const int64_t b = h.Add(Prompt(30, 20), 2);
  h.Step();
  ASSERT_EQ(h.step.seqs.size(), 2u);
  EXPECT_EQ(h.step.seqs[0].seq_id, a);  // decode first
  EXPECT_EQ(h.step.seqs[0].token_ids.size(), 1u);
  EXPECT_EQ(h.step.seqs[1].seq_id, b);  // then a prefill chunk with the rest of the budget
  EXPECT_EQ(h.step.seqs[1].token_ids.size(), 7u);
  h.Step();
  EXPECT_EQ(h.step.seqs[0].seq_id, a);
  EXPECT_EQ(h.step.seqs[1].start_pos, 7);
  EXPECT_EQ(h.step.NumTokens(), 8);
  h.RunToCompletion(100);
  EXPECT_EQ(h.outputs[a], Reference(Prompt(3, 1), 10));
  EXPECT_EQ(h.outputs[b], Reference(Prompt(30, 20), 2));
}

TEST(SchedulerTest, PrefixCacheHitSkipsCachedTokens) {
  Harness h(8, 4, {.max_num_batched_tokens = 64});
  const Ids pa = Prompt(10, 3);
  const int64_t a = h.Add(pa, 2);
  h.RunToCompletion(10);
  EXPECT_EQ(h.kv.FreeBlockIds(), (Ids{3, 4, 5, 6, 7, 2, 1, 0}));
  Ids pb(pa.begin(), pa.begin() + 8);
  pb.push_back(90);
  pb.push_back(91);
  const int64_t b = h.Add(pb, 2);
  h.Step();
  ASSERT_EQ(h.plan.entries.size(), 1u);
  EXPECT_EQ(h.plan.entries[0].computed.block_ids, (Ids{0, 1}));
  ASSERT_EQ(h.step.seqs.size(), 1u);
  EXPECT_EQ(h.step.seqs[0].start_pos, 8);
  EXPECT_EQ(h.step.seqs[0].token_ids, (Ids{90, 91}));
  EXPECT_EQ(h.step.seqs[0].block_ids, (Ids{0, 1, 3}));
  EXPECT_EQ(h.sched.Get(b)->num_cached_tokens, 8);
  EXPECT_EQ(h.kv.prefix_cache_queries(), 20);
  EXPECT_EQ(h.kv.prefix_cache_hits(), 8);
  h.RunToCompletion(10);
  EXPECT_EQ(h.outputs[a], Reference(pa, 2));
  EXPECT_EQ(h.outputs[b], Reference(pb, 2));
}

TEST(SchedulerTest, OutOfBlocksPreemptsTheNewestAndResumesWithTheSameOutput) {
  Harness h(5, 4, {.max_num_batched_tokens = 64});
  const Ids pa = Prompt(4, 1), pb = Prompt(4, 40);
  const int64_t a = h.Add(pa, 8);
  const int64_t b = h.Add(pb, 8);
  for (int i = 0; i < 5; ++i) h.Step();  // positions 0..7: blocks a {0, 2}, b {1, 3}
  EXPECT_EQ(ToVec(h.kv.BlockIds(a)), (Ids{0, 2}));
  EXPECT_EQ(ToVec(h.kv.BlockIds(b)), (Ids{1, 3}));
  EXPECT_EQ(h.sched.num_preemptions(), 0);

  h.Step();  // position 8: one free block, a (older) gets it, b is preempted
  ASSERT_EQ(h.plan.preempted.size(), 1u);
  EXPECT_EQ(h.plan.preempted[0]->seq_id, b);
  EXPECT_EQ(h.sched.num_preemptions(), 1);
  ASSERT_EQ(h.step.seqs.size(), 1u);
  EXPECT_EQ(h.step.seqs[0].seq_id, a);
  EXPECT_EQ(ToVec(h.kv.BlockIds(a)), (Ids{0, 2, 4}));
  EXPECT_TRUE(h.kv.BlockIds(b).empty());
  EXPECT_EQ(h.kv.FreeBlockIds(), (Ids{3, 1}));
  ASSERT_EQ(h.sched.NumWaiting(), 1);
  EXPECT_EQ(h.sched.waiting().front()->seq_id, b);
  EXPECT_EQ(h.sched.Get(b)->num_computed_tokens, 0);
  EXPECT_EQ(h.outputs[b].size(), 5u);  // generated tokens are kept

  h.Step();  // b's hit (blocks 1, 3) plus one new block do not fit the 2 free blocks
  EXPECT_EQ(h.sched.NumWaiting(), 1);
  h.Step();  // a finishes
  EXPECT_EQ(h.kv.FreeBlockIds(), (Ids{3, 1, 4, 2, 0}));
  h.Step();  // b resumes from its cached blocks: only position 8 is recomputed
  ASSERT_EQ(h.step.seqs.size(), 1u);
  EXPECT_EQ(h.step.seqs[0].start_pos, 8);
  EXPECT_EQ(h.step.seqs[0].block_ids, (Ids{1, 3, 4}));
  h.RunToCompletion(50);
  EXPECT_EQ(h.outputs[a], Reference(pa, 8));
  EXPECT_EQ(h.outputs[b], Reference(pb, 8));
}

TEST(SchedulerTest, AnOlderSequenceNeedingABlockPreemptsTheNewest) {
  Harness h(3, 4, {.max_num_batched_tokens = 64});
  const Ids pa = Prompt(3, 1), pb = Prompt(4, 60);
  const int64_t a = h.Add(pa, 6);
  const int64_t b = h.Add(pb, 6);
  h.Step();  // a {0}, b {1}
  h.Step();  // a writes position 3, b position 4 in a new block 2
  EXPECT_EQ(ToVec(h.kv.BlockIds(b)), (Ids{1, 2}));
  EXPECT_EQ(h.kv.NumFreeBlocks(), 0);
  h.Step();  // a needs a block for position 4: b, admitted after it, makes room
  ASSERT_EQ(h.plan.preempted.size(), 1u);
  EXPECT_EQ(h.plan.preempted[0]->seq_id, b);
  ASSERT_EQ(h.step.seqs.size(), 1u);
  EXPECT_EQ(h.step.seqs[0].seq_id, a);
  EXPECT_EQ(ToVec(h.kv.BlockIds(a)), (Ids{0, 2}));
  EXPECT_EQ(h.kv.FreeBlockIds(), (Ids{1}));
  h.RunToCompletion(50);
  EXPECT_EQ(h.outputs[a], Reference(pa, 6));
  EXPECT_EQ(h.outputs[b], Reference(pb, 6));
}

TEST(SchedulerTest, PreemptedSequenceRecomputesWithoutPrefixCache) {
  Harness h(5, 4, {.max_num_batched_tokens = 64}, /*prefix_caching=*/false);
  const Ids pa = Prompt(4, 1), pb = Prompt(4, 40);
  const int64_t a = h.Add(pa, 8);
  const int64_t b = h.Add(pb, 8);
  h.RunToCompletion(50);
  EXPECT_GE(h.sched.num_preemptions(), 1);
  EXPECT_EQ(h.outputs[a], Reference(pa, 8));
  EXPECT_EQ(h.outputs[b], Reference(pb, 8));
  EXPECT_EQ(h.kv.NumFreeBlocks(), 5);
}

TEST(SchedulerTest, ForkedSequencesShareThePromptAndCopyThePartialBlock) {
  Harness h(8, 4, {.max_num_batched_tokens = 64});
  const Ids prompt = Prompt(6, 7);
  const int64_t parent = h.Add(prompt, 3, /*num_forks=*/1);
  h.Step();  // prompt -> blocks {0, 1}; the sibling forks off
  ASSERT_EQ(h.sched.NumRunning(), 2);
  const int64_t child = h.sched.running()[1]->seq_id;
  EXPECT_EQ(ToVec(h.kv.BlockIds(child)), (Ids{0, 1}));
  EXPECT_EQ(h.kv.RefCount(0), 2);
  EXPECT_EQ(h.kv.RefCount(1), 2);

  h.Step();  // both write position 6 into the shared partial block 1
  EXPECT_EQ(h.step.copies, (std::vector<PageCopy>{{1, 2}}));
  EXPECT_EQ(ToVec(h.kv.BlockIds(parent)), (Ids{0, 2}));
  EXPECT_EQ(ToVec(h.kv.BlockIds(child)), (Ids{0, 1}));
  EXPECT_EQ(h.kv.RefCount(0), 2);
  EXPECT_EQ(h.kv.RefCount(1), 1);
  EXPECT_EQ(h.kv.RefCount(2), 1);
  h.RunToCompletion(10);
  EXPECT_EQ(h.outputs[parent], Reference(prompt, 3, 0));
  EXPECT_EQ(h.outputs[child], Reference(prompt, 3, 1));
  EXPECT_NE(h.outputs[parent], h.outputs[child]);
  EXPECT_EQ(h.kv.NumFreeBlocks(), 8);
}

// Per-sequence state follows its sequence: a fresh slot is cleared, a forked child gets a copy of
// its parent's, a preempted sequence restarts from a cleared one (the fake runner fails the step
// otherwise), and every plan names the sequences that finished, restarted or forked since the
// previous one.
TEST(SchedulerTest, StateSlotsFollowForksPreemptionAndFinish) {
  Harness h(10, 4, {.max_num_batched_tokens = 64, .max_num_seqs = 6}, /*prefix_caching=*/false,
            /*num_state_slots=*/6);
  const Ids pa = Prompt(6, 1), pb = Prompt(6, 30), pc = Prompt(5, 60);
  const int64_t a = h.Add(pa, 9, /*num_forks=*/1);
  const int64_t b = h.Add(pb, 9);
  const int64_t c = h.Add(pc, 9, /*num_forks=*/1);
  h.RunToCompletion(200);
  EXPECT_GE(h.sched.num_preemptions(), 1);
  EXPECT_EQ(h.outputs[a], Reference(pa, 9, 0));
  EXPECT_EQ(h.outputs[b], Reference(pb, 9, 0));
  EXPECT_EQ(h.outputs[c], Reference(pc, 9, 0));
  // The two forks, each named once with its parent.
  ASSERT_EQ(h.runner.forked().size(), 2u);
  std::set<int64_t> parents;
  for (const auto& [parent, child] : h.runner.forked()) {
    parents.insert(parent);
    EXPECT_EQ(h.outputs[child], Reference(parent == a ? pa : pc, 9, 1));
  }
  EXPECT_EQ(parents, (std::set<int64_t>{a, c}));
  EXPECT_FALSE(h.runner.reset().empty());
  // Every sequence but the last to finish is reported finished by a later plan.
  std::set<int64_t> finished(h.runner.finished().begin(), h.runner.finished().end());
  EXPECT_EQ(finished.size(), h.runner.finished().size()) << "a sequence finished twice";
  EXPECT_GE(finished.size(), 4u);
  EXPECT_EQ(h.kv.NumFreeStateSlots(), 6);
  EXPECT_EQ(h.kv.NumFreeBlocks(), 10);
}

TEST(SchedulerTest, MaxNumSeqsCountsPendingForks) {
  Harness h(64, 4, {.max_num_batched_tokens = 64, .max_num_seqs = 3});
  h.Add(Prompt(5, 1), 4, /*num_forks=*/1);
  h.Add(Prompt(5, 2), 4, /*num_forks=*/1);
  h.Step();
  EXPECT_EQ(h.sched.NumRunning(), 2);  // the first request and its sibling
  EXPECT_EQ(h.sched.NumWaiting(), 1);
  h.RunToCompletion(30);
}

TEST(SchedulerTest, MixedLongAndShortRequestsAllFinishWithinABound) {
  // 24 requests arriving one per step, long (60-token prompts) and short interleaved, on a
  // pool small enough to preempt. Every step respects the budget (checked in Step()).
  Harness h(28, 4,
            {.max_num_batched_tokens = 32, .max_num_seqs = 8, .long_prefill_token_threshold = 16});
  std::map<int64_t, Ids> prompts;
  std::map<int64_t, int64_t> max_tokens;
  std::vector<int64_t> shorts, longs;
  for (int i = 0; i < 24; ++i) {
    const bool is_long = i % 3 == 0;
    Ids p = Prompt(is_long ? 60 : 3 + i % 5, 5 * i);
    const int64_t mt = is_long ? 4 : 12;
    const int64_t id = h.Add(p, mt);
    prompts[id] = p;
    max_tokens[id] = mt;
    (is_long ? longs : shorts).push_back(id);
    h.Step();
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
  }
  h.RunToCompletion(400);
  EXPECT_GE(h.sched.num_preemptions(), 1);  // the pool is meant to run out
  for (auto& [id, p] : prompts) EXPECT_EQ(h.outputs[id], Reference(p, max_tokens[id])) << id;
  int64_t worst_short = 0, worst_long = 0;
  for (int64_t id : shorts) worst_short = std::max(worst_short, h.finished_after.at(id));
  for (int64_t id : longs) worst_long = std::max(worst_long, h.finished_after.at(id));
  // Unloaded, a short request takes 12 steps and a long one 8; the whole run takes 60 steps, so
  // a request passed over until the queue drains would take more than 40.
  std::cout << "steps " << h.steps << ", worst steps to finish: short " << worst_short << ", long "
            << worst_long << ", preemptions " << h.sched.num_preemptions() << "\n";
  EXPECT_LE(worst_short, 40) << "a short request waited too long";
  EXPECT_LE(worst_long, 40) << "a long request waited too long";
  EXPECT_EQ(h.kv.NumFreeBlocks(), 28);
}

}  // namespace
}  // namespace longview
