#include "kvcache/kv_cache_manager.h"

#include <numeric>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/block_table.h"

namespace longview {
namespace {

using Ids = std::vector<int32_t>;

Ids ToVec(std::span<const int32_t> s) { return Ids(s.begin(), s.end()); }

std::vector<int32_t> Range(int32_t begin, int32_t end) {
  std::vector<int32_t> v(end - begin);
  std::iota(v.begin(), v.end(), begin);
  return v;
}

// AllocateSlots with its Status checked: the allocation, or std::nullopt when out of blocks.
std::optional<SlotAllocation> Alloc(KvCacheManager& kv, const KvSequence& seq, int64_t n,
                                    const ComputedBlocks* computed) {
  absl::StatusOr<std::optional<SlotAllocation>> a = kv.AllocateSlots(seq, n, computed);
  EXPECT_TRUE(a.ok()) << a.status();
  return a.ok() ? *a : std::nullopt;
}

KvSequence Seq(int64_t id, const std::vector<int32_t>& tokens, int64_t computed = 0) {
  return KvSequence{.seq_id = id, .tokens = tokens, .num_computed_tokens = computed};
}

TEST(KvCacheManagerTest, AllocatesFromTheHeadAndFreesLastBlockFirst) {
  KvCacheManager kv({.num_blocks = 6, .page_size = 4});
  std::vector<int32_t> a = Range(0, 10);  // 3 blocks (4 + 4 + 2)
  ASSERT_EQ(kv.NumBlocksToAllocate(Seq(1, a), 10, nullptr), 3);
  auto alloc = Alloc(kv, Seq(1, a), 10, nullptr);
  ASSERT_TRUE(alloc);
  EXPECT_EQ(alloc->new_block_ids, (Ids{0, 1, 2}));
  EXPECT_TRUE(alloc->copies.empty());
  EXPECT_EQ(ToVec(kv.BlockIds(1)), (Ids{0, 1, 2}));
  EXPECT_EQ(kv.NumFreeBlocks(), 3);
  EXPECT_EQ(kv.FreeBlockIds(), (Ids{3, 4, 5}));
  // Only the two full blocks are in the prefix cache.
  EXPECT_TRUE(kv.IsCached(0));
  EXPECT_TRUE(kv.IsCached(1));
  EXPECT_FALSE(kv.IsCached(2));
  EXPECT_EQ(kv.NumBlocksFreedBy(1), 3);
  ASSERT_TRUE(kv.Free(1).ok());
  EXPECT_EQ(kv.FreeBlockIds(), (Ids{3, 4, 5, 2, 1, 0}));
  EXPECT_EQ(kv.RefCount(0), 0);
  // Freed blocks stay findable until reused.
  EXPECT_TRUE(kv.IsCached(0));
}

TEST(KvCacheManagerTest, OutOfBlocksChangesNothing) {
  KvCacheManager kv({.num_blocks = 3, .page_size = 4});
  std::vector<int32_t> a = Range(0, 8), b = Range(100, 108);
  ASSERT_TRUE(Alloc(kv, Seq(1, a), 8, nullptr));
  EXPECT_EQ(kv.NumBlocksToAllocate(Seq(2, b), 8, nullptr), 2);
  EXPECT_FALSE(Alloc(kv, Seq(2, b), 8, nullptr).has_value());
  EXPECT_EQ(kv.NumFreeBlocks(), 1);
  EXPECT_EQ(kv.FreeBlockIds(), (Ids{2}));
  EXPECT_TRUE(kv.BlockIds(2).empty());
  auto one = Alloc(kv, Seq(2, b), 4, nullptr);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->new_block_ids, (Ids{2}));
}

TEST(KvCacheManagerTest, GrowsOneBlockAtATimeDuringDecode) {
  KvCacheManager kv({.num_blocks = 4, .page_size = 4});
  std::vector<int32_t> t = Range(0, 4);
  ASSERT_TRUE(Alloc(kv, Seq(1, t), 4, nullptr));
  t.push_back(50);
  EXPECT_EQ(kv.NumBlocksToAllocate(Seq(1, t, 4), 1, nullptr), 1);
  auto a = Alloc(kv, Seq(1, t, 4), 1, nullptr);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->new_block_ids, (Ids{1}));
  t.push_back(51);
  EXPECT_EQ(kv.NumBlocksToAllocate(Seq(1, t, 5), 1, nullptr), 0);
  auto b = Alloc(kv, Seq(1, t, 5), 1, nullptr);
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->new_block_ids.empty());
  EXPECT_EQ(ToVec(kv.BlockIds(1)), (Ids{0, 1}));
}

TEST(KvCacheManagerTest, PrefixHitSharesFullBlocksAndKeepsTheLastTokenToCompute) {
  KvCacheManager kv({.num_blocks = 8, .page_size = 4});
  std::vector<int32_t> a = Range(0, 10);
  ASSERT_TRUE(Alloc(kv, Seq(1, a), 10, nullptr));  // blocks 0 1 2

  std::vector<int32_t> b = Range(0, 9);  // same first 8 tokens, then one more
  b.push_back(77);                       // 10 tokens: blocks 0 and 1 hit
  ComputedBlocks hit = kv.GetComputedBlocks(Seq(2, b));
  EXPECT_EQ(hit.block_ids, (Ids{0, 1}));
  EXPECT_EQ(hit.num_tokens, 8);
  EXPECT_EQ(hit.num_queried_tokens, 10);
  EXPECT_EQ(kv.NumBlocksToAllocate(Seq(2, b), 2, &hit), 1);
  auto alloc = Alloc(kv, Seq(2, b), 2, &hit);
  ASSERT_TRUE(alloc);
  EXPECT_EQ(alloc->new_block_ids, (Ids{3}));
  EXPECT_EQ(ToVec(kv.BlockIds(2)), (Ids{0, 1, 3}));
  EXPECT_EQ(kv.RefCount(0), 2);
  EXPECT_EQ(kv.RefCount(1), 2);
  EXPECT_EQ(kv.RefCount(3), 1);
  EXPECT_EQ(kv.prefix_cache_queries(), 10);
  EXPECT_EQ(kv.prefix_cache_hits(), 8);

  // A prompt that is exactly two cached blocks still recomputes its last block.
  std::vector<int32_t> c = Range(0, 8);
  ComputedBlocks hit_c = kv.GetComputedBlocks(Seq(3, c));
  EXPECT_EQ(hit_c.block_ids, (Ids{0}));
  EXPECT_EQ(hit_c.num_tokens, 4);

  // A different first block misses everything (chained hashes).
  std::vector<int32_t> d = Range(0, 10);
  d[0] = 99;
  EXPECT_TRUE(kv.GetComputedBlocks(Seq(4, d)).block_ids.empty());
  // So does a different salt.
  KvSequence salted = Seq(5, a);
  salted.cache_salt = 12345;
  EXPECT_TRUE(kv.GetComputedBlocks(salted).block_ids.empty());
}

TEST(KvCacheManagerTest, HitOnAFreedBlockRevivesItAndReallocationEvictsIt) {
  KvCacheManager kv({.num_blocks = 4, .page_size = 4});
  std::vector<int32_t> a = Range(0, 9);  // blocks 0 1 (full) 2 (partial)
  ASSERT_TRUE(Alloc(kv, Seq(1, a), 9, nullptr));
  ASSERT_TRUE(kv.Free(1).ok());
  EXPECT_EQ(kv.FreeBlockIds(), (Ids{3, 2, 1, 0}));

  ComputedBlocks hit = kv.GetComputedBlocks(Seq(2, a));
  EXPECT_EQ(hit.block_ids, (Ids{0, 1}));
  // Reviving two free cached blocks costs two free blocks, plus one new one.
  EXPECT_EQ(kv.NumBlocksToAllocate(Seq(2, a), 1, &hit), 3);
  auto alloc = Alloc(kv, Seq(2, a), 1, &hit);
  ASSERT_TRUE(alloc);
  EXPECT_EQ(alloc->new_block_ids, (Ids{3}));  // the head of the free list
  EXPECT_EQ(ToVec(kv.BlockIds(2)), (Ids{0, 1, 3}));
  EXPECT_EQ(kv.FreeBlockIds(), (Ids{2}));
  ASSERT_TRUE(kv.Free(2).ok());
  EXPECT_EQ(kv.FreeBlockIds(), (Ids{2, 3, 1, 0}));

  // Reusing blocks 2, 3 and 1 for other tokens evicts block 1's hash: the hit shrinks to block 0.
  std::vector<int32_t> other = Range(200, 212);
  ASSERT_TRUE(Alloc(kv, Seq(3, other), 12, nullptr));
  EXPECT_EQ(ToVec(kv.BlockIds(3)), (Ids{2, 3, 1}));
  EXPECT_EQ(kv.GetComputedBlocks(Seq(4, a)).block_ids, (Ids{0}));
  EXPECT_EQ(kv.GetComputedBlocks(Seq(4, other)).block_ids, (Ids{2, 3}));
}

TEST(KvCacheManagerTest, ForkSharesBlocksAndCopiesThePartialBlockOnWrite) {
  KvCacheManager kv({.num_blocks = 6, .page_size = 4});
  std::vector<int32_t> prompt = Range(0, 6);  // block 0 full, block 1 partial (2 tokens)
  ASSERT_TRUE(Alloc(kv, Seq(1, prompt), 6, nullptr));
  ASSERT_TRUE(kv.Fork(1, 2).ok());
  EXPECT_EQ(ToVec(kv.BlockIds(2)), (Ids{0, 1}));
  EXPECT_EQ(kv.RefCount(0), 2);
  EXPECT_EQ(kv.RefCount(1), 2);
  // Both are shared: freeing either releases nothing.
  EXPECT_EQ(kv.NumBlocksFreedBy(1), 0);

  std::vector<int32_t> s1 = prompt, s2 = prompt;
  s1.push_back(40);
  s2.push_back(41);
  // The first writer copies the shared partial block.
  EXPECT_EQ(kv.NumBlocksToAllocate(Seq(2, s2, 6), 1, nullptr), 1);
  auto a2 = Alloc(kv, Seq(2, s2, 6), 1, nullptr);
  ASSERT_TRUE(a2);
  EXPECT_EQ(a2->copies, (std::vector<PageCopy>{{1, 2}}));
  EXPECT_EQ(ToVec(kv.BlockIds(2)), (Ids{0, 2}));
  EXPECT_EQ(kv.RefCount(1), 1);
  EXPECT_EQ(kv.RefCount(2), 1);
  // The last holder writes in place.
  EXPECT_EQ(kv.NumBlocksToAllocate(Seq(1, s1, 6), 1, nullptr), 0);
  auto a1 = Alloc(kv, Seq(1, s1, 6), 1, nullptr);
  ASSERT_TRUE(a1);
  EXPECT_TRUE(a1->copies.empty());
  EXPECT_EQ(ToVec(kv.BlockIds(1)), (Ids{0, 1}));

  ASSERT_TRUE(kv.Free(1).ok());
  EXPECT_EQ(kv.RefCount(0), 1);
  EXPECT_EQ(kv.FreeBlockIds(), (Ids{3, 4, 5, 1}));
  ASSERT_TRUE(kv.Free(2).ok());
  EXPECT_EQ(kv.FreeBlockIds(), (Ids{3, 4, 5, 1, 2, 0}));
  EXPECT_EQ(kv.Usage(), 0.0);
}

TEST(KvCacheManagerTest, SlidingWindowReleasesBlocksThatLeftIt) {
  KvCacheManager kv({.num_blocks = 8, .page_size = 4});
  std::vector<int32_t> a = Range(0, 18);  // blocks 0..4 (4 full + 2 tokens)
  ASSERT_TRUE(Alloc(kv, Seq(1, a), 18, nullptr));
  EXPECT_EQ(ToVec(kv.BlockIds(1)), (Ids{0, 1, 2, 3, 4}));
  ASSERT_TRUE(kv.Fork(1, 2).ok());  // block 1 shared with another sequence
  ASSERT_TRUE(kv.Free(2).ok());
  ASSERT_TRUE(kv.Fork(1, 3).ok());
  // Sinks in block 0, window 6 for the query at token 18: blocks 1..2 left it.
  const BlockRange r = BlocksOutsideWindow(4, 2, 6, 18);
  ASSERT_EQ(r.begin, 1);
  ASSERT_EQ(r.end, 3);
  EXPECT_EQ(kv.ReleaseBlocks(1, r.begin, r.end), 0);  // sequence 3 still holds them
  EXPECT_EQ(ToVec(kv.BlockIds(1)), (Ids{0, -1, -1, 3, 4}));
  EXPECT_EQ(kv.RefCount(1), 1);
  EXPECT_EQ(kv.ReleaseBlocks(3, r.begin, r.end), 2);  // last holder: freed, last in line
  EXPECT_EQ(kv.FreeBlockIds(), (Ids{5, 6, 7, 1, 2}));
  EXPECT_TRUE(kv.IsCached(1));              // still findable by the prefix cache
  EXPECT_EQ(kv.ReleaseBlocks(1, 1, 3), 0);  // again: nothing left to release
  // The window moves on: block 3 goes; the released run is extended, not rescanned.
  EXPECT_EQ(kv.ReleaseBlocks(3, 1, 4), 0);  // sequence 1 still holds block 3
  EXPECT_EQ(kv.ReleaseBlocks(1, 1, 4), 1);
  EXPECT_EQ(kv.RefCount(3), 0);
  EXPECT_EQ(kv.FreeBlockIds(), (Ids{5, 6, 7, 1, 2, 3}));
  // Decoding on: the shared partial block 4 is copied, a new block follows; Free and
  // NumBlocksFreedBy skip the released entries.
  std::vector<int32_t> b = Range(0, 21);
  auto alloc = Alloc(kv, Seq(1, b, 18), 3, nullptr);
  ASSERT_TRUE(alloc);
  EXPECT_EQ(alloc->copies, (std::vector<PageCopy>{{4, 5}}));
  EXPECT_EQ(ToVec(kv.BlockIds(1)), (Ids{0, -1, -1, -1, 5, 6}));
  EXPECT_EQ(kv.NumBlocksFreedBy(1), 2);  // 5 and 6; block 0 is shared with sequence 3
  ASSERT_TRUE(kv.Free(1).ok());
  ASSERT_TRUE(kv.Free(3).ok());
  EXPECT_EQ(kv.Usage(), 0.0);
  EXPECT_EQ(kv.NumFreeBlocks(), 8);
}

// A windowed sequence's prefix hit needs only its sinks' and its window's blocks: a history
// whose middle pages were evicted is still a hit, with a hole the sequence never reads.
TEST(KvCacheManagerTest, WindowedHitSkipsBlocksOutsideTheWindow) {
  KvCacheManager kv({.num_blocks = 16, .page_size = 4});
  const std::vector<int32_t> history = Range(0, 40);  // 10 full blocks
  ASSERT_TRUE(Alloc(kv, Seq(1, history), 40, nullptr));
  const Ids pages = ToVec(kv.BlockIds(1));
  ASSERT_TRUE(kv.Free(1).ok());
  // Evict blocks 2..5 (their pages reused): the plain hit stops at block 2.
  for (int b = 2; b <= 5; ++b) kv.Uncache(pages[b]);
  std::vector<int32_t> more = history;
  for (int32_t t : Range(500, 503)) more.push_back(t);  // 43 tokens: 10 full blocks can hit
  ComputedBlocks plain = kv.GetComputedBlocks(Seq(2, more));
  EXPECT_EQ(plain.num_tokens, 8);
  EXPECT_EQ(plain.hole_end, plain.hole_begin);

  // Sinks 4 (block 0), window 10: token 40 reads tokens 31..40, blocks 7.. on; blocks 1..6 are
  // outside. Block 1 and blocks 6.. are cached, so the hit covers all 10 blocks with hole [1, 7).
  KvSequence windowed = Seq(2, more);
  windowed.window = 10;
  windowed.window_sinks = 4;
  ComputedBlocks hit = kv.GetComputedBlocks(windowed);
  EXPECT_EQ(hit.num_tokens, 40);
  EXPECT_EQ(hit.hole_begin, 1);
  EXPECT_EQ(hit.hole_end, 7);
  EXPECT_EQ(hit.block_ids, (Ids{pages[0], pages[7], pages[8], pages[9]}));
  EXPECT_EQ(hit.block_hashes.size(), 10u);
  // The hole costs no block; the new tokens' block is the only fresh one.
  EXPECT_EQ(kv.NumBlocksToAllocate(windowed, 3, &hit), 4 + 1);
  auto a = Alloc(kv, windowed, 3, &hit);
  ASSERT_TRUE(a);
  windowed.num_computed_tokens = 40;
  const Ids table = ToVec(kv.BlockIds(2));
  ASSERT_EQ(table.size(), 11u);
  EXPECT_EQ(table[0], pages[0]);
  for (int b = 1; b < 7; ++b) EXPECT_EQ(table[b], -1) << b;
  EXPECT_EQ(table[7], pages[7]);
  EXPECT_EQ(table[10], a->new_block_ids.at(0));
  EXPECT_EQ(kv.RefCount(pages[7]), 1);
  EXPECT_EQ(kv.RefCount(pages[1]), 0);  // cached but not taken: outside the window
  // Releasing as the window moves extends the hole; the block after it goes back.
  EXPECT_EQ(kv.ReleaseBlocks(2, 1, 8), 1);
  EXPECT_EQ(kv.BlockIds(2)[7], -1);
  EXPECT_EQ(kv.prefix_cache_hits(), 40);

  // Missing a window block, the hit is shorter: block 9 evicted, the hit ends before it.
  ASSERT_TRUE(kv.Free(2).ok());
  kv.Uncache(pages[9]);
  ComputedBlocks shorter = kv.GetComputedBlocks(windowed);
  // k = 9: token 36 reads 27..36, blocks 6..8 (cached); hole [1, 6).
  EXPECT_EQ(shorter.num_tokens, 36);
  EXPECT_EQ(shorter.hole_begin, 1);
  EXPECT_EQ(shorter.hole_end, 6);
  // Missing a sink block, nothing.
  kv.Uncache(pages[0]);
  EXPECT_EQ(kv.GetComputedBlocks(windowed).num_tokens, 0);
}

TEST(KvCacheManagerTest, CopyOnWriteOutOfBlocksChangesNothing) {
  KvCacheManager kv({.num_blocks = 2, .page_size = 4});
  std::vector<int32_t> prompt = Range(0, 6);
  ASSERT_TRUE(Alloc(kv, Seq(1, prompt), 6, nullptr));
  ASSERT_TRUE(kv.Fork(1, 2).ok());
  prompt.push_back(9);
  EXPECT_FALSE(Alloc(kv, Seq(2, prompt, 6), 1, nullptr).has_value());
  EXPECT_EQ(kv.RefCount(1), 2);
  EXPECT_EQ(ToVec(kv.BlockIds(2)), (Ids{0, 1}));
}

TEST(KvCacheManagerTest, PrefixCachingOffFindsNothing) {
  KvCacheManager kv({.num_blocks = 4, .page_size = 4, .enable_prefix_caching = false});
  std::vector<int32_t> a = Range(0, 9);
  ASSERT_TRUE(Alloc(kv, Seq(1, a), 9, nullptr));
  EXPECT_FALSE(kv.IsCached(0));
  ComputedBlocks hit = kv.GetComputedBlocks(Seq(2, a));
  EXPECT_TRUE(hit.block_ids.empty());
  EXPECT_EQ(hit.num_queried_tokens, 0);
}

}  // namespace
}  // namespace longview

namespace longview {
namespace {

TEST(KvCacheManagerStateTest, SlotsAreTakenFreedAndCopiedOnFork) {
  KvCacheManager kv(
      {.num_blocks = 8, .page_size = 4, .state_bytes_per_seq = 32, .num_state_slots = 2});
  std::vector<int32_t> a = Range(0, 6), b = Range(10, 14), c = Range(20, 22);
  auto first = Alloc(kv, Seq(1, a), 6, nullptr);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->new_state_slot, 0);  // a fresh slot: the runner clears it
  EXPECT_TRUE(first->state_copies.empty());
  EXPECT_EQ(kv.StateSlot(1), 0);
  auto again = Alloc(kv, Seq(1, a, 6), 0, nullptr);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->new_state_slot, -1);  // held already
  // The child takes the other slot at once and copies the parent's state at its first step.
  ASSERT_TRUE(kv.Fork(1, 2).ok());
  EXPECT_EQ(kv.StateSlot(2), 1);
  EXPECT_EQ(kv.NumFreeStateSlots(), 0);
  auto child = Alloc(kv, Seq(2, a, 6), 0, nullptr);
  ASSERT_TRUE(child);
  EXPECT_EQ(child->state_copies, (std::vector<StateCopy>{{0, 1}}));
  EXPECT_EQ(child->new_state_slot, -1);
  // No slot left: a third sequence cannot start (a normal result), and a fork is refused.
  EXPECT_FALSE(Alloc(kv, Seq(3, b), 4, nullptr).has_value());
  EXPECT_EQ(kv.NumFreeBlocks(), 6);  // nothing taken by the refused allocation
  EXPECT_EQ(kv.Fork(1, 4).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(kv.BlockIds(4).empty());
  // Freeing gives the slot back; the lowest free slot is reused first.
  ASSERT_TRUE(kv.Free(1).ok());
  EXPECT_EQ(kv.StateSlot(1), -1);
  auto third = Alloc(kv, Seq(3, c), 2, nullptr);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->new_state_slot, 0);
}

TEST(KvCacheManagerStateTest, LocationsTrackDevicePagesAndReleases) {
  KvCacheManager kv({.num_blocks = 6, .page_size = 2});
  std::vector<int32_t> t = Range(0, 6);
  ASSERT_TRUE(Alloc(kv, Seq(1, t), 6, nullptr));
  EXPECT_EQ(kv.Locations(1).size(), 3u);
  EXPECT_EQ(kv.Locations(1)[1], DevicePage(1));
  EXPECT_EQ(kv.ReleaseBlocks(1, 0, 2), 2);
  EXPECT_EQ(kv.Locations(1)[0], BlockLocation{});
  EXPECT_EQ(kv.Locations(1)[0].tier, KvTier::kNone);
  EXPECT_EQ(ToVec(kv.BlockIds(1)), (Ids{-1, -1, 2}));
  EXPECT_STREQ(KvTierName(kv.Locations(1)[2].tier), "device");
}

TEST(KvCacheManagerStateTest, PrefixHitOnAHeldTableIsAnError) {
  KvCacheManager kv({.num_blocks = 6, .page_size = 2});
  std::vector<int32_t> t = Range(0, 5);
  ASSERT_TRUE(Alloc(kv, Seq(1, t), 5, nullptr));
  ASSERT_TRUE(kv.Free(1).ok());
  ComputedBlocks hit = kv.GetComputedBlocks(Seq(2, t));
  ASSERT_EQ(hit.num_tokens, 4);
  ASSERT_TRUE(Alloc(kv, Seq(3, t), 1, nullptr));
  absl::StatusOr<std::optional<SlotAllocation>> bad = kv.AllocateSlots(Seq(3, t, 1), 0, &hit);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(KvCacheManagerStateTest, OptionsAreValidatedWithTheField) {
  EXPECT_TRUE(ValidateKvCacheManagerOptions({.num_blocks = 4, .page_size = 16}).ok());
  EXPECT_NE(
      ValidateKvCacheManagerOptions({.num_blocks = 4, .page_size = 0}).message().find("page_size"),
      std::string::npos);
  EXPECT_FALSE(
      ValidateKvCacheManagerOptions({.num_blocks = 4, .page_size = 4, .state_bytes_per_seq = 8})
          .ok());
}

}  // namespace
}  // namespace longview
