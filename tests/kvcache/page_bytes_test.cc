// PageBytes and PageArena (kvcache/page_bytes.h): page buffers shared rather than copied,
// fixed-size blocks from one slab with a heap fallback, blocks returned when the last holder
// goes (on any thread), and the host tier keeping its pages in its arena.
#include "kvcache/page_bytes.h"

#include <cstring>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/internal/page_tier_testing.h"
#include "kvcache/kv_page_tier.h"
#include "kvcache/tiered_kv_store.h"
#include "tests/kvcache/page_tier_test_util.h"

namespace longview {
namespace {

using testing_pages::MakePage;

TEST(PageBytesTest, CopiesShareOneBufferAndCompareByContents) {
  const std::vector<std::byte> src(100, std::byte{3});
  PageBytes a = PageBytes::Copy(src);
  PageBytes b = a;
  EXPECT_EQ(a.data(), b.data());  // shared, not copied
  PageBytes c = PageBytes::Copy(a.span());
  EXPECT_NE(c.data(), a.data());
  EXPECT_EQ(c, a);
  c.mutable_data()[99] = std::byte{4};
  EXPECT_FALSE(c == a);
  EXPECT_FALSE(PageBytes::Copy(std::vector<std::byte>(99, std::byte{3})) == a);
  EXPECT_TRUE(PageBytes().empty());
  EXPECT_FALSE(a.from_arena());
}

TEST(PageBytesTest, ArenaHandsOutBlocksThenFallsBackToTheHeap) {
  std::shared_ptr<PageArena> arena = PageArena::CreateOnHeap(64, 2);
  EXPECT_EQ(arena->slab_bytes(), 128);
  PageBytes a = PageBytes::Allocate(64, arena.get());
  PageBytes b = PageBytes::Allocate(64, arena.get());
  EXPECT_TRUE(a.from_arena());
  EXPECT_TRUE(b.from_arena());
  EXPECT_NE(a.data(), b.data());
  EXPECT_EQ(arena->blocks_in_use(), 2);
  PageBytes c = PageBytes::Allocate(64, arena.get());  // full
  EXPECT_FALSE(c.from_arena());
  EXPECT_EQ(c.size(), 64u);
  PageBytes d = PageBytes::Allocate(32, arena.get());  // not the block size
  EXPECT_FALSE(d.from_arena());
  EXPECT_EQ(arena->heap_fallbacks(), 2);
  const std::byte* block = a.data();
  PageBytes shared = a;
  a = PageBytes();
  EXPECT_EQ(arena->blocks_in_use(), 2);  // `shared` still holds it
  shared = PageBytes();
  EXPECT_EQ(arena->blocks_in_use(), 1);
  PageBytes e = PageBytes::Allocate(64, arena.get());
  EXPECT_EQ(e.data(), block);  // the freed block is reused
}

TEST(PageBytesTest, BlocksReturnFromOtherThreadsAndOutliveTheArenaHandle) {
  std::shared_ptr<PageArena> arena = PageArena::CreateOnHeap(16, 64);
  std::vector<PageBytes> held;
  for (int i = 0; i < 64; ++i) {
    held.push_back(PageBytes::Allocate(16, arena.get()));
    std::memset(held.back().mutable_data(), i, 16);
  }
  std::weak_ptr<PageArena> weak = arena;
  arena.reset();  // the blocks keep the arena (and its slab) alive
  ASSERT_FALSE(weak.expired());
  std::thread t([&] {
    for (int i = 0; i < 64; ++i) EXPECT_EQ(static_cast<int>(held[i].data()[15]), i);
    held.clear();
  });
  t.join();
  EXPECT_TRUE(weak.expired());
}

TEST(PageBytesTest, HostTierKeepsPagesInItsArenaAndLookupsShareThem) {
  constexpr int64_t kPageSize = 4, kPageBytes = 256;
  std::shared_ptr<PageArena> arena = PageArena::CreateOnHeap(kPageBytes, 1);
  std::unique_ptr<KvPageTier> tier = MakeHostPageTier(
      {.capacity_bytes = 1 << 20, .page_bytes = kPageBytes, .page_size = kPageSize,
       .arena = arena});
  PageRecord p1 = MakePage(1, kPageSize, kPageBytes);
  PageRecord p2 = MakePage(2, kPageSize, kPageBytes);
  ASSERT_FALSE(p1.bytes.from_arena());
  ASSERT_TRUE(tier->Insert(p1).accepted);  // copied into the arena's one block
  ASSERT_TRUE(tier->Insert(p2).accepted);  // arena full: its own buffer is kept
  EXPECT_EQ(arena->blocks_in_use(), 1);
  const uint64_t hashes[] = {1, 2, 1};
  std::vector<absl::StatusOr<PageRecord>> got = tier->Wait(tier->StartLookup(hashes));
  ASSERT_EQ(got.size(), 3u);
  for (const auto& r : got) ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(got[0]->bytes.from_arena());
  EXPECT_FALSE(got[1]->bytes.from_arena());
  EXPECT_EQ(got[0]->bytes.data(), got[2]->bytes.data());  // no copy per lookup
  EXPECT_EQ(got[1]->bytes.data(), p2.bytes.data());
  EXPECT_TRUE(testing_pages::SamePage(*got[0], p1));
  EXPECT_TRUE(testing_pages::SamePage(*got[1], p2));
  // A looked-up page outlives its eviction from the tier; the block is freed after both.
  tier->Erase(1);
  EXPECT_EQ(arena->blocks_in_use(), 1);
  got.clear();
  EXPECT_EQ(arena->blocks_in_use(), 0);
}

// A batch large enough for the host tier to checksum on several threads still finds the one
// garbled page among many (and serves the rest).
TEST(PageBytesTest, HostTierParallelChecksumsFindAGarbledPage) {
  constexpr int64_t kPageSize = 16, kPageBytes = 1 << 20, kPages = 80;  // 80 MiB: 3 threads
  std::unique_ptr<KvPageTier> tier = MakeHostPageTier(
      {.capacity_bytes = 2 * kPages * (kPageBytes + 4096), .page_bytes = kPageBytes,
       .page_size = kPageSize});
  std::vector<uint64_t> hashes;
  for (int64_t i = 0; i < kPages; ++i) {
    ASSERT_TRUE(tier->Insert(MakePage(100 + i, kPageSize, kPageBytes)).accepted);
    hashes.push_back(100 + i);
  }
  ASSERT_TRUE(CorruptHostPageForTesting(*tier, 100 + 57, 12345));
  std::vector<absl::StatusOr<PageRecord>> got = tier->Wait(tier->StartLookup(hashes));
  ASSERT_EQ(got.size(), hashes.size());
  for (int64_t i = 0; i < kPages; ++i) {
    if (i == 57) {
      EXPECT_EQ(got[i].status().code(), absl::StatusCode::kDataLoss);
    } else {
      ASSERT_TRUE(got[i].ok()) << i << ": " << got[i].status();
      EXPECT_TRUE(testing_pages::SamePage(*got[i], MakePage(100 + i, kPageSize, kPageBytes)));
    }
  }
  EXPECT_EQ(tier->stats().checksum_failures, 1);
  EXPECT_FALSE(tier->Contains(100 + 57));
}

// Verify::kNever (--kv-host-verify false): a lookup trusts host memory and returns no checksum
// to check; a page pushed down still carries its stored checksum for the next tier.
TEST(PageBytesTest, HostTierWithoutLookupChecksStillHandsChecksumsDown) {
  constexpr int64_t kPageSize = 4, kPageBytes = 256, kEntry = kPageBytes + 4 * 4 + 64;
  std::unique_ptr<KvPageTier> tier = MakeHostPageTier(
      {.capacity_bytes = 2 * kEntry, .page_bytes = kPageBytes, .page_size = kPageSize,
       .verify = HostPageTierOptions::Verify::kNever});
  ASSERT_TRUE(tier->Insert(MakePage(1, kPageSize, kPageBytes)).accepted);
  ASSERT_TRUE(tier->Insert(MakePage(2, kPageSize, kPageBytes)).accepted);
  ASSERT_TRUE(CorruptHostPageForTesting(*tier, 1, 7));
  const uint64_t one[] = {1};
  std::vector<absl::StatusOr<PageRecord>> got = tier->Wait(tier->StartLookup(one));
  ASSERT_TRUE(got[0].ok());  // served unchecked, nothing for the consumer to check
  EXPECT_FALSE(got[0]->unchecked_crc.has_value());
  EXPECT_FALSE(testing_pages::SamePage(*got[0], MakePage(1, kPageSize, kPageBytes)));
  InsertResult r = tier->Insert(MakePage(3, kPageSize, kPageBytes));  // pushes out page 2
  ASSERT_EQ(r.displaced.size(), 1u);
  r = tier->Insert(MakePage(4, kPageSize, kPageBytes));  // pushes out page 1, garbled
  ASSERT_EQ(r.displaced.size(), 1u);
  EXPECT_EQ(r.displaced[0].hash, 1u);
  EXPECT_NE(PageChecksumOf(r.displaced[0]), *r.displaced[0].unchecked_crc);
}

// Verify::kByConsumer: lookups pass the stored checksum on, unchecked; TieredKvStore::
// CheckStaged finds the page whose bytes do not match it, and Rejected drops it from its tier
// and counts it.
TEST(PageBytesTest, ConsumerChecksFindAGarbledHostPage) {
  constexpr int64_t kPageSize = 4, kPageBytes = 256;
  std::vector<std::unique_ptr<KvPageTier>> tiers;
  tiers.push_back(MakeHostPageTier({.capacity_bytes = 1 << 20, .page_bytes = kPageBytes,
                                    .page_size = kPageSize,
                                    .verify = HostPageTierOptions::Verify::kByConsumer}));
  KvPageTier& host = *tiers[0];
  TieredKvStore store(std::move(tiers));
  std::vector<PageRecord> pages;
  for (uint64_t h = 1; h <= 3; ++h) pages.push_back(MakePage(h, kPageSize, kPageBytes));
  store.Demote(pages);
  ASSERT_TRUE(CorruptHostPageForTesting(host, 2, 99));
  const uint64_t hashes[] = {1, 2, 3};
  store.Stage(hashes);
  ASSERT_EQ(store.staged_pages(), 3);  // staged without a check
  ASSERT_TRUE(store.Staged(2)->unchecked_crc.has_value());
  EXPECT_EQ(store.CheckStaged(hashes), std::vector<uint64_t>{2});
  store.Rejected(2);
  store.Promoted(1);
  EXPECT_EQ(store.Staged(2), nullptr);
  EXPECT_FALSE(host.Contains(2));
  EXPECT_TRUE(host.Contains(1));
  EXPECT_EQ(store.Report()[0].stats.checksum_failures, 1);
  EXPECT_EQ(store.Report()[0].promoted_pages, 1);
}

}  // namespace
}  // namespace longview
