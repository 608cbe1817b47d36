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
  pool.Free(*b);  // 2 and 3 go to the tail, behind 4
  pool.Free(*a);  // then 0 and 1
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
  pool.AddRef((*a)[0]);
  EXPECT_EQ(pool.RefCount(0), 2);
  pool.Free(*a);
  EXPECT_EQ(pool.RefCount(0), 1);
  EXPECT_EQ(pool.NumFree(), 1);
  pool.Free(*a);
  EXPECT_EQ(pool.RefCount(0), 0);
  EXPECT_EQ(pool.NumFree(), 2);
  EXPECT_THROW(pool.Free(*a), std::logic_error);
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
