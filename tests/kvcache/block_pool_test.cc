#include "kvcache/block_pool.h"

#include "gtest/gtest.h"
#include "kvcache/block_table.h"
#include "kvcache/kv_layout.h"

namespace longview {
namespace {

TEST(BlockPoolTest, AllocatesInOrderAndReusesInEvictionOrder) {
  BlockPool pool(5);
  EXPECT_EQ(pool.NumFree(), 5);
  auto a = pool.Allocate(2);
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, (std::vector<int32_t>{0, 1}));
  auto b = pool.Allocate(2);
  EXPECT_EQ(*b, (std::vector<int32_t>{2, 3}));
  ASSERT_TRUE(pool.Free(*b).ok());  // 2 and 3 go to the tail, behind 4
  ASSERT_TRUE(pool.Free(*a).ok());  // then 0 and 1
  auto c = pool.Allocate(5);
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, (std::vector<int32_t>{4, 2, 3, 0, 1}));
  EXPECT_EQ(pool.NumFree(), 0);
}

TEST(BlockPoolTest, OutOfBlocksIsANormalResultThatChangesNothing) {
  BlockPool pool(3);
  auto a = pool.Allocate(2);
  ASSERT_TRUE(a);
  EXPECT_FALSE(pool.CanAllocate(2));
  EXPECT_FALSE(pool.Allocate(2).has_value());
  EXPECT_EQ(pool.NumFree(), 1);
  auto b = pool.Allocate(1);
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, (std::vector<int32_t>{2}));
}

TEST(BlockPoolTest, ReferenceCountsKeepSharedBlocks) {
  BlockPool pool(2);
  auto a = pool.Allocate(1);
  ASSERT_TRUE(a);
  ASSERT_TRUE(pool.AddRef((*a)[0]).ok());
  EXPECT_EQ(pool.RefCount(0), 2);
  ASSERT_TRUE(pool.Free(*a).ok());
  EXPECT_EQ(pool.RefCount(0), 1);
  EXPECT_EQ(pool.NumFree(), 1);
  ASSERT_TRUE(pool.Free(*a).ok());
  EXPECT_EQ(pool.RefCount(0), 0);
  EXPECT_EQ(pool.NumFree(), 2);
  const absl::Status twice = pool.Free(*a);
  EXPECT_EQ(twice.code(), absl::StatusCode::kFailedPrecondition) << twice;
  EXPECT_EQ(pool.NumFree(), 2);
  EXPECT_EQ(pool.AddRef(0).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(BlockTableTest, LocatesTokensAndCountsNeededBlocks) {
  BlockTable t(4);
  EXPECT_EQ(t.BlocksNeeded(0), 0);
  EXPECT_EQ(t.BlocksNeeded(9), 3);
  std::vector<int32_t> ids = {7, 3, 5};
  t.Append(ids);
  EXPECT_EQ(t.Capacity(), 12);
  EXPECT_EQ(t.BlocksNeeded(12), 0);
  EXPECT_EQ(t.BlocksNeeded(13), 1);
  EXPECT_EQ(t.Locate(0), (std::pair<int32_t, int64_t>{7, 0}));
  EXPECT_EQ(t.Locate(5), (std::pair<int32_t, int64_t>{3, 1}));
  EXPECT_EQ(t.Locate(11), (std::pair<int32_t, int64_t>{5, 3}));
  EXPECT_EQ(t.Release(), ids);
  EXPECT_EQ(t.Capacity(), 0);
}

TEST(BlockTableTest, ReleasedBlocksKeepLaterPositionsInPlace) {
  BlockTable t(4);
  t.Append(std::vector<int32_t>{7, 3, 5, 9});
  EXPECT_EQ(t.ReleaseBlock(1), 3);
  EXPECT_EQ(t.ReleaseBlock(1), -1);  // already released
  EXPECT_EQ(t.ReleaseBlock(2), 5);
  EXPECT_EQ(t.NumResident(), 2);
  EXPECT_EQ(t.blocks(), (std::vector<int32_t>{7, -1, -1, 9}));
  EXPECT_EQ(t.Locate(13), (std::pair<int32_t, int64_t>{9, 1}));
  EXPECT_EQ(t.Capacity(), 16);
  EXPECT_EQ(t.Release(), (std::vector<int32_t>{7, 9}));  // only blocks still held
  EXPECT_EQ(t.NumResident(), 0);
}

TEST(BlockTableTest, BlocksOutsideWindowKeepSinkPagesAndTheWindow) {
  // Page 4, sinks 3 (block 0), window 6: the query at token 20 sees tokens >= 15, so blocks 1, 2
  // (tokens 4..11) can go; block 3 (12..15) holds token 15.
  BlockRange r = BlocksOutsideWindow(4, 3, 6, 20);
  EXPECT_EQ(r.begin, 1);
  EXPECT_EQ(r.end, 3);
  // Token 21 sees >= 16: block 3 goes too.
  EXPECT_EQ(BlocksOutsideWindow(4, 3, 6, 21).end, 4);
  // Early on nothing is outside.
  r = BlocksOutsideWindow(4, 3, 6, 5);
  EXPECT_EQ(r.begin, r.end);
  r = BlocksOutsideWindow(4, 3, 6, 0);
  EXPECT_EQ(r.begin, r.end);
  // Sinks spanning two blocks keep both; no sinks keeps none.
  EXPECT_EQ(BlocksOutsideWindow(4, 5, 6, 40).begin, 2);
  EXPECT_EQ(BlocksOutsideWindow(4, 0, 6, 40).begin, 0);
  EXPECT_EQ(BlocksOutsideWindow(4, 0, 6, 40).end, 8);  // tokens >= 35 seen: block 8 holds 35
  // Page size 1: every token its own block.
  EXPECT_EQ(BlocksOutsideWindow(1, 2, 3, 10).begin, 2);
  EXPECT_EQ(BlocksOutsideWindow(1, 2, 3, 10).end, 8);
}

TEST(KvLayoutTest, PageIsLayerMajorWithKeysBeforeValues) {
  KvLayout l{.num_layers = 3, .num_kv_heads = 2, .head_dim = 4, .page_size = 5};
  EXPECT_EQ(l.TokenStride(), 8);
  EXPECT_EQ(l.KvStride(), 40);
  EXPECT_EQ(l.LayerStride(), 80);
  EXPECT_EQ(l.PageElements(), 240);
  EXPECT_EQ(l.Offset(2, KvLayout::kValue, 3, 1), 2 * 80 + 40 + 3 * 8 + 4);
}

}  // namespace
}  // namespace longview
