// The engine loop with tiers below the device pool (kvcache/tiered_kv_store.h), here over an
// in-memory fake tier (the real host and RocksDB tiers have their own tests): cached pages that
// leave a small device pool are demoted, and a prompt sent again takes its prefix back from the
// tier, with output identical to computing it; a page the tier reports broken is recomputed.
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/internal/page_tier_testing.h"
#include "kvcache/tiered_kv_store.h"
#include "scheduler/engine_loop.h"

namespace longview {
namespace {

using Ids = std::vector<int32_t>;

// The embedded model (trained: its outputs depend on the whole context, unlike the random
// golden models', so a page with the wrong K/V shows in the logprobs).
std::shared_ptr<const LoadedModel> Golden() {
  static std::shared_ptr<const LoadedModel> lm = [] {
    auto r = LoadedModel::Load(std::string(LONGVIEW_TEST_DATA_DIR) + "/../../models/longview-tiny");
    EXPECT_TRUE(r.ok()) << r.status();
    return std::shared_ptr<const LoadedModel>(std::move(*r));
  }();
  return lm;
}

// Holds every page it is given; `broken` hashes answer DataLoss once (and are dropped).
class FakeTier : public KvPageTier {
 public:
  const char* name() const override { return "fake"; }
  InsertResult Insert(PageRecord page) override {
    ++stats_.inserted_pages;
    const uint64_t h = page.hash;
    pages_[h] = std::move(page);
    stats_.pages = static_cast<int64_t>(pages_.size());
    return {.accepted = true};
  }
  bool Contains(uint64_t hash) const override { return pages_.contains(hash); }
  LookupHandle StartLookup(std::span<const uint64_t> hashes) override {
    pending_.assign(hashes.begin(), hashes.end());
    return 1;
  }
  std::vector<absl::StatusOr<PageRecord>> Wait(LookupHandle) override {
    std::vector<absl::StatusOr<PageRecord>> out;
    for (uint64_t h : pending_) {
      ++stats_.lookups;
      if (broken.contains(h)) {
        pages_.erase(h);
        ++stats_.checksum_failures;
        out.push_back(absl::DataLossError("broken"));
      } else if (auto it = pages_.find(h); it != pages_.end()) {
        ++stats_.hits;
        out.push_back(it->second);
      } else {
        out.push_back(absl::NotFoundError("absent"));
      }
    }
    return out;
  }
  void Erase(uint64_t hash) override { pages_.erase(hash); }
  PageTierStats stats() const override { return stats_; }

  std::set<uint64_t> broken;
  std::map<uint64_t, PageRecord> pages_;

 private:
  std::vector<uint64_t> pending_;
  PageTierStats stats_;
};

Ids Prompt(int len, uint32_t seed) {
  Ids p{1};
  uint32_t x = seed * 2654435761u + 12345u;
  for (int i = 1; i < len; ++i) {
    x = x * 1664525u + 1013904223u;
    p.push_back(3 + static_cast<int32_t>((x >> 8) % 4000));
  }
  return p;
}

struct Result {
  Ids tokens;
  std::vector<float> logprobs;  // of the chosen tokens: they see every prompt position's K/V
  int64_t cached = 0;
};

// Outputs equal: the same tokens, logprobs equal up to float rounding (the prompt was computed
// in one chunk the first time and partly taken from the tier the second).
void ExpectSame(const Result& got, const Result& want) {
  EXPECT_EQ(got.tokens, want.tokens);
  ASSERT_EQ(got.logprobs.size(), want.logprobs.size());
  for (size_t i = 0; i < got.logprobs.size(); ++i) {
    EXPECT_NEAR(got.logprobs[i], want.logprobs[i], 1e-4) << "token " << i;
  }
}

Result RunRequest(EngineLoop& loop, const Ids& prompt) {
  GenerationRequest r;
  r.request_id = "r";
  r.prompt_tokens = prompt;
  r.max_tokens = 8;
  r.ignore_eos = true;
  r.sampling.temperature = 0;
  r.logprobs = 0;
  auto s = loop.Submit(std::move(r));
  EXPECT_TRUE(s.ok()) << s.status();
  Result res;
  RequestOutput out;
  while ((*s)->Next(&out)) {
    for (const SequenceDelta& d : out.deltas) {
      res.tokens.insert(res.tokens.end(), d.token_ids.begin(), d.token_ids.end());
      for (const TokenLogprob& l : d.logprobs) res.logprobs.push_back(l.logprob);
    }
    res.cached = out.cached_prompt_tokens;
    if (out.finished) {
      EXPECT_TRUE(out.status.ok()) << out.status;
      break;
    }
  }
  return res;
}

struct TierSetup {
  std::shared_ptr<TieredKvStore> store;
  FakeTier* tier = nullptr;
  EngineLoopOptions Options() {
    auto t = std::make_unique<FakeTier>();
    tier = t.get();
    std::vector<std::unique_ptr<KvPageTier>> tiers;
    tiers.push_back(std::move(t));
    store = std::make_shared<TieredKvStore>(std::move(tiers));
    EngineLoopOptions o;
    o.page_size = 16;
    o.num_kv_pages = 12;  // 192 tokens: one 150-token prompt and its output at a time
    o.kv_store = store;
    return o;
  }
};

TEST(EngineLoopTiersTest, APromptPushedOutOfTheDeviceComesBackFromTheTier) {
  const Ids a = Prompt(150, 1), b = Prompt(150, 2), c = Prompt(150, 3);
  // Reference outputs: no tiers, a pool large enough.
  Result want_a;
  {
    EngineLoopOptions o;
    o.num_kv_pages = 64;
    EngineLoop plain(Golden(), o);
    plain.Start();
    want_a = RunRequest(plain, a);
    plain.Stop();
  }
  TierSetup setup;
  EngineLoop loop(Golden(), setup.Options());
  loop.Start();
  const Result first = RunRequest(loop, a);
  ExpectSame(first, want_a);
  EXPECT_EQ(first.cached, 0);
  RunRequest(loop, b);  // b and c take the pool: a's cached pages leave the device for the tier
  RunRequest(loop, c);
  EXPECT_GE(setup.tier->stats().inserted_pages, 9);
  const Result again = RunRequest(loop, a);
  ExpectSame(again, want_a);
  // Every full block before the last token: 9 of 150 tokens' 16-token blocks = 144 tokens.
  EXPECT_EQ(again.cached, 144);
  EXPECT_GE(again.cached * 10, static_cast<int64_t>(a.size()) * 9);
  const EngineMetrics m = loop.Snapshot();
  ASSERT_EQ(m.kv_tiers.size(), 1u);
  EXPECT_EQ(m.kv_tiers[0].name, "fake");
  EXPECT_EQ(m.kv_tiers[0].promoted_pages, 9);
  EXPECT_GT(m.kv_tiers[0].promoted_bytes, 0);
  loop.Stop();
}

TEST(EngineLoopTiersTest, ABrokenPageEndsTheHitAndIsRecomputed) {
  const Ids a = Prompt(150, 4), b = Prompt(150, 5), c = Prompt(150, 6);
  TierSetup setup;
  EngineLoop loop(Golden(), setup.Options());
  loop.Start();
  const Result first = RunRequest(loop, a);
  RunRequest(loop, b);
  RunRequest(loop, c);
  // Break a's fifth block in the tier: its hash is the fifth of a's chain. Find it as the page
  // whose tokens are a[64, 80).
  uint64_t fifth = 0;
  for (const auto& [h, page] : setup.tier->pages_) {
    if (page.tokens == Ids(a.begin() + 64, a.begin() + 80)) fifth = h;
  }
  ASSERT_NE(fifth, 0u);
  setup.tier->broken.insert(fifth);
  const Result again = RunRequest(loop, a);
  ExpectSame(again, first);
  EXPECT_EQ(again.cached, 64);  // four blocks, then the broken one stops the hit
  EXPECT_EQ(setup.tier->stats().checksum_failures, 1);
  loop.Stop();
}

// Preemption swaps through the tiers: a sequence preempted for want of pages frees its pages,
// whose full blocks (prompt and generated tokens) stay cached; as the other sequence takes
// them they are demoted, and when the preempted one resumes its prefix comes back from the
// tier (only the last partial page and the tokens after it are recomputed). Both answers equal
// those of a pool large enough for everything.
TEST(EngineLoopTiersTest, APreemptedSequenceResumesFromItsSwappedPages) {
  const Ids a = Prompt(90, 7), b = Prompt(90, 8);
  constexpr int kNew = 64;  // 90 + 64 tokens: 10 pages each, 20 > the pool's 12
  auto submit = [](EngineLoop& loop, const Ids& prompt, const char* id) {
    GenerationRequest r;
    r.request_id = id;
    r.prompt_tokens = prompt;
    r.max_tokens = kNew;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    r.logprobs = 0;
    auto s = loop.Submit(std::move(r));
    EXPECT_TRUE(s.ok()) << s.status();
    return *std::move(s);
  };
  auto drain = [](auto& stream) {
    Result res;
    RequestOutput out;
    while (stream->Next(&out)) {
      for (const SequenceDelta& d : out.deltas) {
        res.tokens.insert(res.tokens.end(), d.token_ids.begin(), d.token_ids.end());
        for (const TokenLogprob& l : d.logprobs) res.logprobs.push_back(l.logprob);
      }
      if (out.finished) {
        EXPECT_TRUE(out.status.ok()) << out.status;
        break;
      }
    }
    return res;
  };
  Result want_a, want_b;
  {
    EngineLoopOptions o;
    o.num_kv_pages = 64;
    EngineLoop plain(Golden(), o);
    plain.Start();
    auto sa = submit(plain, a, "a");
    want_a = drain(sa);
    auto sb = submit(plain, b, "b");
    want_b = drain(sb);
    plain.Stop();
  }
  TierSetup setup;
  EngineLoop loop(Golden(), setup.Options());
  loop.Start();
  auto sa = submit(loop, a, "a");
  auto sb = submit(loop, b, "b");
  const Result got_a = drain(sa), got_b = drain(sb);
  ExpectSame(got_a, want_a);
  ExpectSame(got_b, want_b);
  const EngineMetrics m = loop.Snapshot();
  EXPECT_GE(m.num_preemptions_total, 1);
  ASSERT_EQ(m.kv_tiers.size(), 1u);
  // The preempted sequence's full pages went down and came back.
  EXPECT_GE(setup.tier->stats().inserted_pages, 1);
  EXPECT_GE(m.kv_tiers[0].promoted_pages, 1);
  loop.Stop();
}

// Write-back: every block reaches the tier once its page is full, before any eviction (a pool
// large enough for everything); without it, only evicted pages do.
TEST(EngineLoopTiersTest, WriteBackCopiesFullPagesBeforeEviction) {
  const Ids a = Prompt(150, 9);
  for (bool write_back : {true, false}) {
    TierSetup setup;
    EngineLoopOptions o = setup.Options();
    o.num_kv_pages = 64;
    o.kv_write_back = write_back;
    EngineLoop loop(Golden(), o);
    loop.Start();
    RunRequest(loop, a);  // 150 + 8 tokens: 9 full pages
    loop.Stop();
    if (write_back) {
      EXPECT_EQ(setup.tier->stats().inserted_pages, 9);
      // The pages in the tier are the prompt's blocks, in order of their tokens.
      int matched = 0;
      for (const auto& [h, page] : setup.tier->pages_) {
        for (int b = 0; b < 9; ++b) {
          matched += page.tokens == Ids(a.begin() + 16 * b, a.begin() + 16 * (b + 1));
        }
      }
      EXPECT_EQ(matched, 9);
    } else {
      EXPECT_EQ(setup.tier->stats().inserted_pages, 0);
    }
  }
}

// The server's host tier (--kv-host-verify, the default) leaves checksums to the engine, which
// checks promoted pages while their copies run: a garbled page never reaches a forward; the
// sequence is requeued and its prefix hit stops before that block. Output unchanged.
// Forwards to a real tier and remembers each inserted page's tokens (to find a block's hash).
class SpyTier : public KvPageTier {
 public:
  explicit SpyTier(std::unique_ptr<KvPageTier> inner) : inner(std::move(inner)) {}
  const char* name() const override { return inner->name(); }
  InsertResult Insert(PageRecord page) override {
    tokens[page.hash] = page.tokens;
    return inner->Insert(std::move(page));
  }
  bool Contains(uint64_t hash) const override { return inner->Contains(hash); }
  LookupHandle StartLookup(std::span<const uint64_t> hashes) override {
    return inner->StartLookup(hashes);
  }
  std::vector<absl::StatusOr<PageRecord>> Wait(LookupHandle h) override { return inner->Wait(h); }
  void Erase(uint64_t hash) override { inner->Erase(hash); }
  PageTierStats stats() const override { return inner->stats(); }

  std::unique_ptr<KvPageTier> inner;
  std::map<uint64_t, Ids> tokens;
};

TEST(EngineLoopTiersTest, AGarbledHostPageIsCaughtBesideItsCopyAndRecomputed) {
  const Ids a = Prompt(150, 10), b = Prompt(150, 11), c = Prompt(150, 12);
  auto spy = std::make_unique<SpyTier>(MakeHostPageTier(
      {.capacity_bytes = 64 << 20,
       .page_bytes = int64_t{16} * 8 * 2 * 2 * 64 * 4,  // longview-tiny, float32 (CPU backend)
       .page_size = 16,
       .verify = HostPageTierOptions::Verify::kByConsumer}));
  SpyTier& host = *spy;
  std::vector<std::unique_ptr<KvPageTier>> tiers;
  tiers.push_back(std::move(spy));
  auto store = std::make_shared<TieredKvStore>(std::move(tiers));
  EngineLoopOptions o;
  o.page_size = 16;
  o.num_kv_pages = 12;
  o.kv_store = store;
  o.kv_write_back = true;  // the recomputed block goes back to the tier (checked at the end)
  EngineLoop loop(Golden(), o);
  loop.Start();
  const Result first = RunRequest(loop, a);
  RunRequest(loop, b);
  RunRequest(loop, c);
  ASSERT_GE(host.stats().pages, 9) << "declined: page bytes of the embedded model changed?";
  uint64_t fifth = 0;  // a's fifth block: tokens a[64, 80)
  for (const auto& [h, toks] : host.tokens) {
    if (toks == Ids(a.begin() + 64, a.begin() + 80)) fifth = h;
  }
  ASSERT_NE(fifth, 0u);
  ASSERT_TRUE(CorruptHostPageForTesting(*host.inner, fifth, 1234));
  const Result again = RunRequest(loop, a);
  ExpectSame(again, first);
  const EngineMetrics m = loop.Snapshot();
  ASSERT_EQ(m.kv_tiers.size(), 1u);
  EXPECT_EQ(m.kv_tiers[0].stats.checksum_failures, 1);
  EXPECT_GE(m.kv_tiers[0].promoted_pages, 4);  // the four blocks before it were still used
  loop.Stop();
  // The recomputed block was written back: the tier holds it again, and intact.
  const uint64_t fifth_only[] = {fifth};
  store->Stage(fifth_only);
  ASSERT_NE(store->Staged(fifth), nullptr);
  EXPECT_TRUE(store->CheckStaged(fifth_only).empty());
}

}  // namespace
}  // namespace longview
