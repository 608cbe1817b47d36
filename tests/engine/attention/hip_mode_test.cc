// Attention mode hip (engine/attention/hip_mode.cc, hip.h): its parameters and their errors, the
// v1.2 defaults, its footprint and prefix-cache salt, the middle a query block prunes, and the
// selection a row reads once the chunks are kept (spans and packed positions, per head or shared).
#include <string>
#include <vector>

#include "engine/attention/attention_mode.h"
#include "engine/attention/hip.h"
#include "gtest/gtest.h"
#include "tests/support/attention.h"

namespace longview {
namespace {

absl::StatusOr<Attention> Parse(const AttentionRequest& r, std::string* field = nullptr) {
  return ParseAttention(r, "longview.attention.", field);
}

TEST(HipModeTest, DefaultsAreV12s) {
  absl::StatusOr<Attention> a = Parse({.mode = "hip"});
  ASSERT_TRUE(a.ok()) << a.status();
  const HipAttention* h = (*a)->hip();
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->sinks, 256);
  EXPECT_EQ(h->window, 1024);
  EXPECT_EQ(h->top_k, 2048);
  EXPECT_EQ(h->block_size, 64);
  EXPECT_EQ(h->stages, (std::vector<HipStage>{{256, 32768}, {32, 8192}, {8, 2048}}));
  EXPECT_EQ((*a)->name(), "hip");
  EXPECT_TRUE((*a)->PerRowSelection());
  EXPECT_EQ((*a)->Footprint().window, 0);  // every page stays: any key may be chosen
  EXPECT_EQ((*a)->Footprint().exit, PageExit::kKept);
  EXPECT_EQ((*a)->MaxSequenceLength(8192), 8192);
  EXPECT_EQ((*a)->QueryPosition(5000), 5000);
  EXPECT_EQ(Attention()->hip(), nullptr);
  EXPECT_EQ(SlidingWindow(8, 2)->hip(), nullptr);
}

TEST(HipModeTest, TopKAloneSetsTheLastStage) {
  absl::StatusOr<Attention> a = Parse({.mode = "hip", .window = 64, .sinks = 4, .top_k = 4096,
                                       .block_size = 16});
  ASSERT_TRUE(a.ok()) << a.status();
  const HipAttention* h = (*a)->hip();
  EXPECT_EQ(h->stages.back(), (HipStage{8, 4096}));
  EXPECT_EQ(h->window, 64);
  EXPECT_EQ(h->sinks, 4);
  EXPECT_EQ(h->block_size, 16);
  absl::StatusOr<Attention> staged = Parse(
      {.mode = "hip", .top_k = 16, .stages = std::vector<HipStage>{{16, 64}, {4, 16}}});
  ASSERT_TRUE(staged.ok()) << staged.status();
  EXPECT_EQ((*staged)->hip()->top_k, 16);
  EXPECT_EQ((*staged)->Params().size(), 8u);  // sinks, window, top_k, block_size, 2 x 2 stage
}

TEST(HipModeTest, BadParametersNameTheirField) {
  struct Bad {
    AttentionRequest request;
    std::string field;
  };
  using S = std::vector<HipStage>;
  const std::vector<Bad> bad = {
      {{.mode = "hip", .top_k = 100}, "longview.attention.top_k"},        // not a multiple of 8
      {{.mode = "hip", .top_k = 16384}, "longview.attention.top_k"},      // above stage 2's keep
      {{.mode = "hip", .top_k = 32, .stages = S{{16, 64}, {4, 16}}}, "longview.attention.top_k"},
      {{.mode = "hip", .stages = S{}}, "longview.attention.stages"},
      {{.mode = "hip", .stages = S{{16, 64}, {16, 32}}}, "longview.attention.stages[1]"},
      {{.mode = "hip", .stages = S{{16, 64}, {4, 128}}}, "longview.attention.stages[1]"},
      {{.mode = "hip", .stages = S{{16, 60}}}, "longview.attention.stages[0].keep"},
      {{.mode = "hip", .stages = S{{0, 64}}}, "longview.attention.stages[0].chunk"},
      {{.mode = "hip", .stages = S{{16, 8}}}, "longview.attention.stages[0].keep"},
      {{.mode = "hip", .stages = S(9, HipStage{1, 1})}, "longview.attention.stages"},
      {{.mode = "hip", .window = 0}, "longview.attention.window"},
      {{.mode = "hip", .sinks = -1}, "longview.attention.sinks"},
      {{.mode = "hip", .block_size = 0}, "longview.attention.block_size"},
      {{.mode = "dense", .top_k = 8}, "longview.attention.top_k"},
      {{.mode = "sliding_window", .window = 8, .block_size = 8}, "longview.attention.block_size"},
      {{.mode = "sliding_window", .window = 8, .stages = S{{4, 4}}}, "longview.attention.stages"},
  };
  for (const Bad& b : bad) {
    std::string field;
    absl::StatusOr<Attention> a = Parse(b.request, &field);
    ASSERT_FALSE(a.ok()) << b.field;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(field, b.field) << a.status();
    EXPECT_EQ(std::string(a.status().message()).rfind(b.field + " ", 0), 0u) << a.status();
  }
}

TEST(HipModeTest, StagesFromAFlag) {
  absl::StatusOr<std::vector<HipStage>> s = ParseHipStages("256:32768,32:8192,8:2048");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, (std::vector<HipStage>{{256, 32768}, {32, 8192}, {8, 2048}}));
  for (const char* bad : {"", "256", "256:x", "256:1:2", "8:16,"}) {
    absl::StatusOr<std::vector<HipStage>> b = ParseHipStages(bad);
    EXPECT_FALSE(b.ok()) << bad;
    EXPECT_NE(b.status().message().find("is not chunk:keep"), std::string::npos) << b.status();
  }
}

TEST(HipModeTest, PrefixCachesOfOtherParametersStayApart) {
  const Attention a = SmallHip(4, 32, 16), b = SmallHip(4, 32, 32), c = SmallHip(4, 64, 16);
  EXPECT_NE(a->PrefixCacheSalt(), 0u);
  EXPECT_NE(a->PrefixCacheSalt(), b->PrefixCacheSalt());
  EXPECT_NE(a->PrefixCacheSalt(), c->PrefixCacheSalt());
  EXPECT_NE(a->PrefixCacheSalt(), FullAttention()->PrefixCacheSalt());
  EXPECT_EQ(a->PrefixCacheSalt(), SmallHip(4, 32, 16)->PrefixCacheSalt());
}

TEST(HipModeTest, MiddleAndPruning) {
  const Attention mode = SmallHip(4, 32, 16);  // owns what h refers to
  const HipAttention& h = *mode->hip();
  // Block from token 100: window from 69, middle [4, 69).
  EXPECT_EQ(HipMiddle(h, 100), (cpu::HipRange{4, 69}));
  EXPECT_TRUE(HipPrunes(h, 100));
  // Middle of 16 tokens or fewer: every key is read.
  EXPECT_EQ(HipMiddle(h, 51), (cpu::HipRange{4, 20}));
  EXPECT_FALSE(HipPrunes(h, 51));
  EXPECT_TRUE(HipPrunes(h, 52));
  EXPECT_EQ(HipMiddle(h, 10), (cpu::HipRange{4, 4}));
  const cpu::HipMaskParams p = HipMaskParamsFor(h, 8, 2, 16);
  EXPECT_TRUE(p.share_heads);
  EXPECT_EQ(p.query_position, 32 - 16 + 1);
  EXPECT_EQ(HipStagesOf(h).size(), 2u);
}

TEST(HipModeTest, RowSelectionPacksSinksAndChunksBelowTheWindow) {
  const Attention mode = SmallHip(4, 32, 16);  // owns what h refers to
  const HipAttention& h = *mode->hip();
  std::vector<int32_t> table(32);
  for (int32_t i = 0; i < 32; ++i) table[i] = 100 + i;  // pages of 4 tokens
  // Block from token 100 (window from 69), row 102; kept [20, 28) and [40, 44).
  const cpu::HipHeadRanges kept = {{{20, 28}, {40, 44}}, {{20, 28}, {40, 44}}};
  KvSelection sel = HipRowSelection(h, table, 4, 100, 102, kept);
  EXPECT_TRUE(sel.head_begin.empty());  // one list: the heads kept the same
  // Keys: sinks 0..3, kept 20..27 and 40..43, window 69..102 = 4 + 12 + 34.
  EXPECT_EQ(sel.NumKeys(0), 50);
  std::vector<std::pair<int64_t, int64_t>> token_pos;  // (token, position) per key
  for (const KvSpan& s : sel.spans) {
    for (int32_t i = 0; i < s.count; ++i) {
      token_pos.push_back({(s.page_id - 100) * 4 + s.first_slot + i, s.first_position + i});
    }
  }
  ASSERT_EQ(token_pos.size(), 50u);
  // Sinks at 69 - 12 - 4 = 53.., kept at 57..68, window at its own positions.
  EXPECT_EQ(token_pos[0], (std::pair<int64_t, int64_t>{0, 53}));
  EXPECT_EQ(token_pos[3], (std::pair<int64_t, int64_t>{3, 56}));
  EXPECT_EQ(token_pos[4], (std::pair<int64_t, int64_t>{20, 57}));
  EXPECT_EQ(token_pos[12], (std::pair<int64_t, int64_t>{40, 65}));
  EXPECT_EQ(token_pos[15], (std::pair<int64_t, int64_t>{43, 68}));
  EXPECT_EQ(token_pos[16], (std::pair<int64_t, int64_t>{69, 69}));
  EXPECT_EQ(token_pos.back(), (std::pair<int64_t, int64_t>{102, 102}));
  // Heads that kept different chunks read their own lists, each packed for its own count.
  const cpu::HipHeadRanges apart = {{{20, 28}}, {{40, 44}}};
  KvSelection per_head = HipRowSelection(h, table, 4, 100, 100, apart);
  ASSERT_EQ(per_head.head_begin.size(), 3u);
  EXPECT_EQ(per_head.NumKeys(0), 4 + 8 + 32);
  EXPECT_EQ(per_head.NumKeys(1), 4 + 4 + 32);
  EXPECT_EQ(per_head.ForHead(1)[0].first_position, 69 - 4 - 4);
}

}  // namespace
}  // namespace longview
