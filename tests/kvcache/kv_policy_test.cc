#include "kvcache/kv_policy.h"

#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace longview {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Positions = std::vector<int64_t>;

KvPolicySpec Parse(const KvPolicyRequest& r) {
  absl::StatusOr<KvPolicySpec> s = ParseKvPolicy(r, "longview.kv.");
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : KvPolicySpec{};
}

Positions Iota(int64_t begin, int64_t end) {
  Positions v(end - begin);
  std::iota(v.begin(), v.end(), begin);
  return v;
}

// A sequence's block table and page storage as the engine keeps them: new tokens are written at
// the slot equal to their index, compactions move slots and release blocks (their pages go back
// to a pool and are handed to the next block that needs one, garbling what they held).
struct Storage {
  int64_t page_size;
  std::vector<int32_t> table;  // logical block -> page, -1 released
  std::map<int32_t, std::vector<int64_t>> pages;  // page -> token held by each slot (-1: none)
  std::vector<int32_t> free_pages;
  int32_t next_page = 0;

  explicit Storage(int64_t ps) : page_size(ps) {}
  int64_t& At(int64_t slot) { return pages.at(table.at(slot / page_size))[slot % page_size]; }
  void Write(int64_t begin, int64_t end) {
    while (static_cast<int64_t>(table.size()) * page_size < end) {
      int32_t page = next_page++;
      if (!free_pages.empty()) {
        page = free_pages.back();
        free_pages.pop_back();
      }
      table.push_back(page);
      pages[page] = std::vector<int64_t>(page_size, -7);  // whatever the page held before
    }
    for (int64_t t = begin; t < end; ++t) At(t) = t;
  }
  void Apply(const KvCompaction& c) {
    for (auto [src, dst] : c.moves) {
      ASSERT_LT(dst, src);
      At(dst) = At(src);
    }
    for (int64_t b : c.free_blocks) {
      ASSERT_NE(table[b], -1) << "block " << b << " released twice";
      free_pages.push_back(table[b]);
      table[b] = -1;
    }
  }
};

// Every key the selection names reads the token at its position, from a page the table holds.
void ExpectSelectionReads(const KvSelection& sel, Storage& st, const Positions& want) {
  Positions got;
  for (const KvSpan& s : sel.spans) {
    ASSERT_GE(s.page_id, 0);
    for (int32_t i = 0; i < s.count; ++i) {
      EXPECT_EQ(st.pages.at(s.page_id)[s.first_slot + i], s.first_position + i);
      got.push_back(s.first_position + i);
    }
  }
  EXPECT_EQ(got, want);
}

TEST(KvPolicyTest, ParsesDefaultsFromThePapers) {
  KvPolicySpec none = Parse({});
  EXPECT_FALSE(none.enabled());
  KvPolicySpec st = Parse({.policy = "streaming", .budget = 64});
  EXPECT_EQ(st.kind, KvPolicyKind::kStreaming);
  EXPECT_EQ(st.sinks, 4);
  EXPECT_EQ(st.window, 60);
  KvPolicySpec h2o = Parse({.policy = "h2o", .budget = 100});
  EXPECT_EQ(h2o.window, 50);
  KvPolicySpec snap = Parse({.policy = "snapkv", .budget = 1024});
  EXPECT_EQ(snap.window, 32);
  EXPECT_EQ(snap.kernel, 7);
  EXPECT_EQ(snap.interval, 0);
  KvPolicySpec lazy = Parse({.policy = "lazy", .budget = 2048});
  EXPECT_EQ(lazy.window, 128);
  EXPECT_EQ(lazy.interval, 128);
  EXPECT_DOUBLE_EQ(lazy.alpha, 1e-4);
  // Small budgets scale the windows down instead of refusing the defaults.
  EXPECT_EQ(Parse({.policy = "lazy", .budget = 100}).window, 25);
  EXPECT_EQ(Parse({.policy = "snapkv", .budget = 40}).window, 20);
  EXPECT_THAT(KvPolicyParams(lazy),
              ElementsAre(std::pair<std::string, double>{"budget", 2048},
                          std::pair<std::string, double>{"window", 128},
                          std::pair<std::string, double>{"interval", 128},
                          std::pair<std::string, double>{"alpha", 1e-4}));
}

void ExpectFieldError(const KvPolicyRequest& r, const std::string& want_field,
                      const std::string& text) {
  std::string field;
  absl::StatusOr<KvPolicySpec> s = ParseKvPolicy(r, "longview.kv.", &field);
  ASSERT_FALSE(s.ok()) << want_field;
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr(want_field + " " + text));
  EXPECT_EQ(field, want_field);
}

TEST(KvPolicyTest, ErrorsNameTheField) {
  ExpectFieldError({.policy = "fifo", .budget = 8}, "longview.kv.policy",
                   "'fifo' is unknown (one of: none, streaming, h2o, snapkv, lazy)");
  ExpectFieldError({.policy = "h2o"}, "longview.kv.budget",
                   "is required for policy h2o");
  ExpectFieldError({.policy = "h2o", .budget = 0}, "longview.kv.budget",
                   "must be in [1,");
  ExpectFieldError({.policy = "h2o", .budget = 8, .sinks = 2}, "longview.kv.sinks",
                   "is not a parameter of policy h2o");
  ExpectFieldError({.policy = "h2o", .budget = 8, .window = 9}, "longview.kv.window",
                   "must be in [0, 8]");
  ExpectFieldError({.policy = "streaming", .budget = 8, .sinks = 8}, "longview.kv.sinks",
                   "must be in [0, longview.kv.budget) = [0, 8), got 8");
  ExpectFieldError({.policy = "streaming", .budget = 8, .window = 4}, "longview.kv.window",
                   "is not a parameter of policy streaming");
  ExpectFieldError({.policy = "snapkv", .budget = 64, .kernel = 4}, "longview.kv.kernel",
                   "must be odd");
  ExpectFieldError({.policy = "snapkv", .budget = 64, .window = 64}, "longview.kv.window",
                   "must be in [1, 63]");
  ExpectFieldError({.policy = "lazy", .budget = 64, .alpha = 0.0}, "longview.kv.alpha",
                   "must be in (0, 1]");
  ExpectFieldError({.policy = "lazy", .budget = 64, .interval = 0}, "longview.kv.interval",
                   "must be in [1,");
  ExpectFieldError({.policy = "none", .budget = 64}, "longview.kv.budget",
                   "is not a parameter of policy none");
}

TEST(KvPolicyTest, BeforeAnyEvictionTheSelectionIsDense) {
  KvPolicyState state(Parse({.policy = "h2o", .budget = 64}));
  const std::vector<int32_t> table = {5, 2, 9};
  KvSelection sel = state.Selection(table, 4, 10);
  KvSelection dense = DenseSelection(table, 4, 10);
  ASSERT_EQ(sel.spans.size(), dense.spans.size());
  for (size_t i = 0; i < sel.spans.size(); ++i) {
    EXPECT_EQ(sel.spans[i].page_id, dense.spans[i].page_id);
    EXPECT_EQ(sel.spans[i].first_slot, dense.spans[i].first_slot);
    EXPECT_EQ(sel.spans[i].count, dense.spans[i].count);
    EXPECT_EQ(sel.spans[i].first_position, dense.spans[i].first_position);
  }
  EXPECT_TRUE(state.Evict(10, 10, 4).empty());  // within budget
}

// stats[h][j] for one KV head: the attention each kept key got.
void ObserveOne(KvPolicyState& state, const std::vector<float>& attention, int64_t rows) {
  state.Observe(attention, 1, 1.0, rows);
}

TEST(KvPolicyTest, StreamingKeepsSinksAndRecentAndFreesThePagesBetweenWithoutMoving) {
  KvPolicyState state(Parse({.policy = "streaming", .budget = 8, .sinks = 2}));
  Storage st(4);
  st.Write(0, 20);
  ExpectSelectionReads(state.Selection(st.table, 4, 20), st, Iota(0, 20));
  KvCompaction c = state.Evict(20, 20, 4);
  EXPECT_EQ(c.evicted, 12);
  EXPECT_THAT(state.KeptPositions(), ElementsAre(0, 1, 14, 15, 16, 17, 18, 19));
  // Blocks 1 and 2 hold nothing kept: released; the holes left (slots 2, 3, 12, 13) are within
  // a quarter of the budget or two pages, so nothing moves.
  EXPECT_THAT(state.KeptSlots(), ElementsAre(0, 1, 14, 15, 16, 17, 18, 19));
  EXPECT_THAT(c.moves, ElementsAre());
  EXPECT_THAT(c.free_blocks, ElementsAre(1, 2));
  st.Apply(c);
  // Decoding on: token 20 goes to its own slot (block 5), and reads the kept tokens.
  for (int64_t end = 21; end <= 26; ++end) {
    st.Write(end - 1, end);
    Positions want = {0, 1};
    for (int64_t t = end - 1 - 6; t < end; ++t) want.push_back(t);
    ExpectSelectionReads(state.Selection(st.table, 4, end), st, want);
    st.Apply(state.Evict(end, 20, 4));
    want.erase(want.begin() + 2);
    ExpectSelectionReads(state.Selection(st.table, 4, end), st, want);
  }
  // Block 3 (tokens 12..15) went when its last token left the window; still no move.
  EXPECT_EQ(st.table[3], -1);
  EXPECT_THAT(state.KeptSlots(), ElementsAre(0, 1, 20, 21, 22, 23, 24, 25));
}

TEST(KvPolicyTest, ScatteredEvictionsArePackedOnceTheHolesExceedAQuarterOfTheBudget) {
  // h2o keeping every fourth token: one kept token in each of 8 blocks.
  KvPolicyState state(Parse({.policy = "h2o", .budget = 8, .window = 0}));
  Storage st(4);
  st.Write(0, 32);
  state.Selection(st.table, 4, 32);
  std::vector<float> a(32, 0.0f);
  for (int i = 3; i < 32; i += 4) a[i] = 1.0f;  // the heavy hitters
  ObserveOne(state, a, 1);
  KvCompaction c = state.Evict(32, 32, 4);
  EXPECT_THAT(state.KeptPositions(), ElementsAre(3, 7, 11, 15, 19, 23, 27, 31));
  // 24 holes in 32 held slots, more than max(2 pages, 8 / 4): packed into blocks 0 and 1.
  EXPECT_THAT(state.KeptSlots(), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  EXPECT_EQ(c.moves.size(), 8u);  // token 3 -> slot 0, ..., token 31 -> slot 7
  EXPECT_THAT(c.free_blocks, ElementsAre(2, 3, 4, 5, 6, 7));
  st.Apply(c);
  ExpectSelectionReads(state.Selection(st.table, 4, 32), st, state.KeptPositions());
}

TEST(KvPolicyTest, H2OKeepsTheRecentWindowAndTheHeavyHitters) {
  KvPolicyState state(Parse({.policy = "h2o", .budget = 4, .window = 2}));
  Storage st(4);
  st.Write(0, 8);
  ExpectSelectionReads(state.Selection(st.table, 4, 8), st, Iota(0, 8));
  ObserveOne(state, {0.1f, 0.5f, 0.0f, 0.3f, 0.2f, 0.0f, 0.0f, 0.0f}, 1);
  ObserveOne(state, {0.1f, 0.0f, 0.0f, 0.0f, 0.4f, 0.0f, 0.0f, 0.0f}, 1);  // accumulates
  KvCompaction c = state.Evict(8, 8, 4);
  EXPECT_THAT(state.KeptPositions(), ElementsAre(1, 4, 6, 7));  // 4: 0.6, 1: 0.5
  st.Apply(c);
  st.Write(8, 9);
  ExpectSelectionReads(state.Selection(st.table, 4, 9), st, Positions{1, 4, 6, 7, 8});
}

TEST(KvPolicyTest, SnapKvSelectsOnceAtTheEndOfThePromptByPooledVotes) {
  KvPolicyState state(Parse({.policy = "snapkv", .budget = 6, .window = 2, .kernel = 3}));
  Storage st(4);
  st.Write(0, 8);
  state.Selection(st.table, 4, 8);
  EXPECT_EQ(state.StatsRows(0, 8, 12), 0);  // the prompt goes on
  EXPECT_TRUE(state.Evict(8, 12, 4).empty());
  st.Write(8, 12);
  state.Selection(st.table, 4, 12);
  EXPECT_EQ(state.StatsRows(8, 12, 12), 2);  // the observation window
  //                tokens 0    1     2     3     4     5     6     7     8     9    10    11
  ObserveOne(state, {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.9f, 0.0f, 0.0f, 0.5f, 0.5f}, 2);
  KvCompaction c = state.Evict(12, 12, 4);
  // The window (10, 11), then 4 by max-pooled votes: 6, 7, 8 (7's neighbours), then the latest
  // of the zero-vote ties below the window: 9.
  EXPECT_THAT(state.KeptPositions(), ElementsAre(6, 7, 8, 9, 10, 11));
  st.Apply(c);
  // Decoding past the budget: no re-selection without an interval.
  st.Write(12, 14);
  ExpectSelectionReads(state.Selection(st.table, 4, 14), st, Positions{6, 7, 8, 9, 10, 11, 12, 13});
  EXPECT_EQ(state.StatsRows(13, 14, 12), 0);
  EXPECT_TRUE(state.Evict(14, 12, 4).empty());
}

// SnapKV votes with the largest of the KV heads' means: a token one head attends strongly beats
// one that every head attends moderately (whose head mean is higher); H2O keeps the head mean.
TEST(KvPolicyTest, SnapKvVotesWithTheLargestKvHeadAndH2OWithTheHeadMean) {
  // Two KV heads, 6 keys, one layer and one query head per KV head (per_row_norm 1), one row.
  // Token 0: max 0.8, mean 0.4; token 1: max and mean 0.5; token 2: max and mean 0.45. Budget 4:
  // the window (4, 5) and the best two: by max 0 and 1, by mean 1 and 2.
  //                                 tokens 0     1     2      3     4     5
  const std::vector<float> stats = {0.8f, 0.5f, 0.45f, 0.0f, 0.0f, 0.0f,   // KV head 0
                                    0.0f, 0.5f, 0.45f, 0.0f, 0.0f, 0.0f};  // KV head 1
  for (const char* policy : {"snapkv", "h2o"}) {
    const bool snap = std::string(policy) == "snapkv";
    KvPolicyRequest req{.policy = policy, .budget = 4, .window = 2};
    if (snap) req.kernel = 1;
    KvPolicyState state(Parse(req));
    Storage st(2);
    st.Write(0, 6);
    state.Selection(st.table, 2, 6);
    state.Observe(stats, /*num_kv_heads=*/2, /*per_row_norm=*/1.0, /*rows=*/1);
    state.Evict(6, 6, 2);
    if (snap) {
      EXPECT_THAT(state.KeptPositions(), ElementsAre(0, 1, 4, 5));
    } else {
      EXPECT_THAT(state.KeptPositions(), ElementsAre(1, 2, 4, 5));
    }
  }
}

TEST(KvPolicyTest, LazyFavoursTokensWhoseRecurrenceSaysTheyAreDueAgain) {
  // W = 2 recent tokens kept; 2 more by priority.
  KvPolicyState state(
      Parse({.policy = "lazy", .budget = 4, .window = 2, .interval = 3, .alpha = 0.1}));
  Storage st(8);
  st.Write(0, 6);
  state.Selection(st.table, 8, 6);
  EXPECT_EQ(state.StatsRows(0, 6, 6), 6);
  // Six decode steps (tokens 6..11, one row each: steps 1..6). Token 1 is important at steps
  // 2, 4 and 6, token 2 once at step 1, the others never.
  for (int64_t end = 7; end <= 12; ++end) {
    st.Write(end - 1, end);
    state.Selection(st.table, 8, end);
    std::vector<float> a(state.num_kept(), 0.0f);
    if (end % 2 == 0) a[1] = 0.5f;
    if (end == 7) a[2] = 0.5f;
    ObserveOne(state, a, 1);
  }
  KvCompaction c = state.Evict(12, 6, 8);
  EXPECT_EQ(c.evicted, 8);
  // The clock counts steps: tokens 0..5 arrived at step 0, token 6 at step 1 and so on. Token 1
  // (important at steps 2, 4, 6: MRI 2, last 6) scores highest, then token 2 (MRI 1, once at
  // step 1, long ago); tokens never important score 0.
  EXPECT_THAT(state.KeptPositions(), ElementsAre(1, 2, 10, 11));
  st.Apply(c);
  // The next eviction waits `interval` steps.
  st.Write(12, 13);
  state.Selection(st.table, 8, 13);
  EXPECT_TRUE(state.Evict(13, 6, 8).empty());
}

TEST(KvPolicyTest, CompactionsNeverLoseAKeptToken) {
  // Random attention, random budgets and pages, chunked prefill then decode: after every
  // compaction the selection reads exactly the kept tokens, each from the slot it was moved to.
  std::mt19937 rng(7);
  for (const char* policy : {"streaming", "h2o", "snapkv", "lazy"}) {
    for (int64_t ps : {1, 3, 16}) {
      KvPolicyRequest r{.policy = policy, .budget = 5 + static_cast<int64_t>(rng() % 40)};
      if (std::string(policy) == "snapkv") r.interval = 7;
      KvPolicyState state(Parse(r));
      Storage st(ps);
      const int64_t prompt = 30 + rng() % 100;
      int64_t end = 0;
      while (end < prompt + 60) {
        const int64_t start = end;
        end = end < prompt ? std::min<int64_t>(prompt, end + 1 + rng() % 40) : end + 1;
        st.Write(start, end);
        KvSelection sel = state.Selection(st.table, ps, end);
        Positions want = state.KeptPositions();
        ExpectSelectionReads(sel, st, want);
        const int64_t rows = state.StatsRows(start, end, prompt);
        std::vector<float> stats(2 * state.num_kept());
        for (float& x : stats) x = static_cast<float>(rng() % 1000) / 1000.0f;
        state.Observe(stats, 2, 4.0, rows);
        st.Apply(state.Evict(end, prompt, ps));
        if (end >= prompt && std::string(policy) != "snapkv" && std::string(policy) != "lazy") {
          EXPECT_LE(state.num_kept(), r.budget.value());
        }
        ExpectSelectionReads(state.Selection(st.table, ps, end), st, state.KeptPositions());
      }
      // Memory held: the blocks still in the table cover the kept tokens and the one written.
      int64_t held = 0;
      for (int32_t p : st.table) held += p >= 0;
      // (holes up to a quarter of the budget or a page stay unpacked)
      const int64_t holes = std::max(2 * ps, r.budget.value() / 4);
      EXPECT_LE(held, (state.num_kept() + holes + ps - 1) / ps + 2) << policy << " ps " << ps;
    }
  }
}

}  // namespace
}  // namespace longview
