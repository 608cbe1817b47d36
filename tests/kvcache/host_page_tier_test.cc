#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kvcache/internal/page_tier_testing.h"
#include "kvcache/kv_page_tier.h"
#include "tests/kvcache/page_tier_test_util.h"

namespace longview {
namespace {

using testing_pages::MakePage;
using testing_pages::SamePage;

constexpr int64_t kPageSize = 4;
constexpr int64_t kPageBytes = 1000;
// What one page costs the host tier: bytes + tokens + its fixed per-entry overhead (64).
constexpr int64_t kEntryBytes = kPageBytes + kPageSize * 4 + 64;

PageRecord Page(uint64_t hash) { return MakePage(hash, kPageSize, kPageBytes); }

std::unique_ptr<KvPageTier> Tier(int64_t num_pages) {
  return MakeHostPageTier({.capacity_bytes = num_pages * kEntryBytes,
                           .page_bytes = kPageBytes,
                           .page_size = kPageSize});
}

std::vector<absl::StatusOr<PageRecord>> Lookup(KvPageTier& tier, std::vector<uint64_t> hashes) {
  return tier.Wait(tier.StartLookup(hashes));
}

std::vector<uint64_t> Hashes(const std::vector<PageRecord>& pages) {
  std::vector<uint64_t> out;
  for (const PageRecord& p : pages) out.push_back(p.hash);
  return out;
}

TEST(HostPageTierTest, LookupAnswersInOrderWithRecordsAndNotFound) {
  auto tier = Tier(4);
  EXPECT_STREQ(tier->name(), "host");
  ASSERT_TRUE(tier->Insert(Page(1)).accepted);
  ASSERT_TRUE(tier->Insert(Page(2)).accepted);
  auto got = Lookup(*tier, {2, 9, 1});
  ASSERT_EQ(got.size(), 3u);
  ASSERT_TRUE(got[0].ok()) << got[0].status();
  EXPECT_TRUE(SamePage(*got[0], Page(2)));
  EXPECT_TRUE(absl::IsNotFound(got[1].status())) << got[1].status();
  ASSERT_TRUE(got[2].ok()) << got[2].status();
  EXPECT_TRUE(SamePage(*got[2], Page(1)));
  // A lookup copies: the tier still holds both.
  EXPECT_TRUE(tier->Contains(1));
  EXPECT_TRUE(tier->Contains(2));
  const PageTierStats s = tier->stats();
  EXPECT_EQ(s.pages, 2);
  EXPECT_EQ(s.bytes, 2 * kEntryBytes);
  EXPECT_EQ(s.capacity_bytes, 4 * kEntryBytes);
  EXPECT_EQ(s.inserted_pages, 2);
  EXPECT_EQ(s.inserted_bytes, 2 * kEntryBytes);
  EXPECT_EQ(s.lookups, 3);
  EXPECT_EQ(s.hits, 2);
  EXPECT_EQ(s.hit_bytes, 2 * kEntryBytes);
}

TEST(HostPageTierTest, HandlesAreWaitedOnce) {
  auto tier = Tier(2);
  ASSERT_TRUE(tier->Insert(Page(1)).accepted);
  const LookupHandle a = tier->StartLookup(std::vector<uint64_t>{1});
  const LookupHandle b = tier->StartLookup(std::vector<uint64_t>{5});
  EXPECT_NE(a, b);
  EXPECT_EQ(tier->Wait(b).size(), 1u);
  EXPECT_EQ(tier->Wait(a).size(), 1u);
  EXPECT_TRUE(tier->Wait(a).empty());
}

TEST(HostPageTierTest, FullTierDisplacesLeastRecentlyUsedWithTheirRecords) {
  auto tier = Tier(3);
  for (uint64_t h : {1, 2, 3}) {
    InsertResult r = tier->Insert(Page(h));
    ASSERT_TRUE(r.accepted);
    EXPECT_TRUE(r.displaced.empty());
  }
  InsertResult r = tier->Insert(Page(4));
  ASSERT_TRUE(r.accepted);
  ASSERT_EQ(Hashes(r.displaced), (std::vector<uint64_t>{1}));
  EXPECT_TRUE(SamePage(r.displaced[0], Page(1)));  // the whole record, for the next tier
  r = tier->Insert(Page(5));
  ASSERT_EQ(Hashes(r.displaced), (std::vector<uint64_t>{2}));
  EXPECT_TRUE(SamePage(r.displaced[0], Page(2)));
  EXPECT_FALSE(tier->Contains(1));
  EXPECT_FALSE(tier->Contains(2));
  for (uint64_t h : {3, 4, 5}) EXPECT_TRUE(tier->Contains(h)) << h;
  EXPECT_EQ(tier->stats().evicted_pages, 2);
  EXPECT_EQ(tier->stats().pages, 3);
  EXPECT_EQ(tier->stats().bytes, 3 * kEntryBytes);
}

TEST(HostPageTierTest, HitRefreshesRecency) {
  auto tier = Tier(3);
  for (uint64_t h : {1, 2, 3}) ASSERT_TRUE(tier->Insert(Page(h)).accepted);
  ASSERT_TRUE(Lookup(*tier, {1})[0].ok());  // order, oldest first: 2 3 1
  EXPECT_EQ(Hashes(tier->Insert(Page(4)).displaced), (std::vector<uint64_t>{2}));
  ASSERT_TRUE(Lookup(*tier, {3})[0].ok());  // 1 4 3
  EXPECT_EQ(Hashes(tier->Insert(Page(5)).displaced), (std::vector<uint64_t>{1}));
  EXPECT_EQ(Hashes(tier->Insert(Page(6)).displaced), (std::vector<uint64_t>{4}));
  // A miss refreshes nothing; inserting a held page is a no-op (no refresh, no eviction).
  ASSERT_FALSE(Lookup(*tier, {42})[0].ok());
  InsertResult again = tier->Insert(Page(3));
  EXPECT_TRUE(again.accepted);
  EXPECT_TRUE(again.displaced.empty());
  EXPECT_EQ(Hashes(tier->Insert(Page(7)).displaced), (std::vector<uint64_t>{3}));
  EXPECT_EQ(tier->stats().inserted_pages, 7);
}

TEST(HostPageTierTest, CapacityIsCountedInBytes) {
  // Room for 2.9 entries holds 2.
  auto tier = MakeHostPageTier(
      {.capacity_bytes = kEntryBytes * 29 / 10, .page_bytes = kPageBytes, .page_size = kPageSize});
  ASSERT_TRUE(tier->Insert(Page(1)).accepted);
  ASSERT_TRUE(tier->Insert(Page(2)).accepted);
  EXPECT_EQ(Hashes(tier->Insert(Page(3)).displaced), (std::vector<uint64_t>{1}));
  EXPECT_EQ(tier->stats().pages, 2);
  // Smaller than one entry, or zero: every insert declined.
  for (int64_t cap : {int64_t{0}, kEntryBytes - 1}) {
    auto small =
        MakeHostPageTier({.capacity_bytes = cap, .page_bytes = kPageBytes, .page_size = kPageSize});
    InsertResult r = small->Insert(Page(1));
    EXPECT_FALSE(r.accepted) << cap;
    EXPECT_FALSE(small->Contains(1));
    EXPECT_EQ(small->stats().declined_pages, 1);
    EXPECT_EQ(small->stats().pages, 0);
  }
}

TEST(HostPageTierTest, DeclinesMalformedPages) {
  auto tier = Tier(4);
  EXPECT_FALSE(tier->Insert(MakePage(1, kPageSize, kPageBytes - 1)).accepted);
  EXPECT_FALSE(tier->Insert(MakePage(2, kPageSize + 1, kPageBytes)).accepted);
  EXPECT_FALSE(tier->Insert(MakePage(3, kPageSize - 1, kPageBytes)).accepted);
  EXPECT_FALSE(tier->Insert(PageRecord{.hash = 4}).accepted);
  // Malformed even though a well-formed page 5 is held: still declined.
  ASSERT_TRUE(tier->Insert(Page(5)).accepted);
  EXPECT_FALSE(tier->Insert(MakePage(5, kPageSize, 3)).accepted);
  for (uint64_t h : {1, 2, 3, 4}) EXPECT_FALSE(tier->Contains(h)) << h;
  EXPECT_EQ(tier->stats().declined_pages, 5);
  EXPECT_EQ(tier->stats().pages, 1);
}

TEST(HostPageTierTest, CorruptedPageIsDataLossAndDropped) {
  auto tier = Tier(4);
  ASSERT_TRUE(tier->Insert(Page(1)).accepted);
  ASSERT_TRUE(tier->Insert(Page(2)).accepted);
  ASSERT_TRUE(CorruptHostPageForTesting(*tier, 1, 517));
  EXPECT_FALSE(CorruptHostPageForTesting(*tier, 99, 0));
  auto got = Lookup(*tier, {1, 2});
  EXPECT_TRUE(absl::IsDataLoss(got[0].status())) << got[0].status();
  ASSERT_TRUE(got[1].ok());
  EXPECT_TRUE(SamePage(*got[1], Page(2)));
  EXPECT_FALSE(tier->Contains(1));
  EXPECT_TRUE(absl::IsNotFound(Lookup(*tier, {1})[0].status()));
  const PageTierStats s = tier->stats();
  EXPECT_EQ(s.checksum_failures, 1);
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.pages, 1);
  EXPECT_EQ(s.bytes, kEntryBytes);
}

// Pushed-out pages go down unchecked, with their stored checksum (the next tier checks it off
// the engine's thread): a garbled one carries a checksum its bytes do not match.
TEST(HostPageTierTest, PushedOutPagesCarryTheirStoredChecksum) {
  auto tier = Tier(2);
  ASSERT_TRUE(tier->Insert(Page(1)).accepted);
  ASSERT_TRUE(tier->Insert(Page(2)).accepted);
  ASSERT_TRUE(CorruptHostPageForTesting(*tier, 1, 0));
  InsertResult r = tier->Insert(Page(3));
  ASSERT_TRUE(r.accepted);
  ASSERT_EQ(r.displaced.size(), 1u);
  ASSERT_TRUE(r.displaced[0].unchecked_crc.has_value());
  EXPECT_NE(PageChecksumOf(r.displaced[0]), *r.displaced[0].unchecked_crc);
  r = tier->Insert(Page(4));
  ASSERT_EQ(r.displaced.size(), 1u);
  EXPECT_EQ(PageChecksumOf(r.displaced[0]), *r.displaced[0].unchecked_crc);  // page 2, intact
  EXPECT_FALSE(tier->Contains(1));
  EXPECT_EQ(tier->stats().evicted_pages, 2);
}

TEST(HostPageTierTest, EraseFreesTheRoom) {
  auto tier = Tier(2);
  ASSERT_TRUE(tier->Insert(Page(1)).accepted);
  ASSERT_TRUE(tier->Insert(Page(2)).accepted);
  tier->Erase(1);
  tier->Erase(77);  // absent: no-op
  EXPECT_FALSE(tier->Contains(1));
  EXPECT_EQ(tier->stats().pages, 1);
  EXPECT_EQ(tier->stats().bytes, kEntryBytes);
  InsertResult r = tier->Insert(Page(3));
  EXPECT_TRUE(r.accepted);
  EXPECT_TRUE(r.displaced.empty());
}

}  // namespace
}  // namespace longview
