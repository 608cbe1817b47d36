// Attention mode hip (engine/attention/hip_mode.cc, hip.h): its parameters and their errors, the
// v1.2 defaults, its footprint and prefix-cache salt, the middle a query block prunes, and the
// selection a row reads once the chunks are kept (spans and packed positions, per head or shared).
#include <random>
#include <string>
#include <vector>

#include "engine/attention/attention_mode.h"
#include "engine/attention/hip.h"
#include "gtest/gtest.h"
#include "tests/support/attention.h"
#include "tests/support/key_pool.h"

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
  EXPECT_EQ(h->stages, (std::vector<HipStage>{{256, 32768, 4}, {32, 8192, 4}, {8, 2048, 1}}));
  EXPECT_EQ(h->refresh, (std::vector<int64_t>{32, 16, 8}));
  EXPECT_EQ(h->dense_layers, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(h->dense_top_k, 4096);
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
  EXPECT_EQ(h->dense_top_k, 8192);  // twice top_k, up to the keep before the last stage
  absl::StatusOr<Attention> staged = Parse(
      {.mode = "hip", .top_k = 16, .stages = std::vector<HipStage>{{16, 64}, {4, 16}}});
  ASSERT_TRUE(staged.ok()) << staged.status();
  EXPECT_EQ((*staged)->hip()->top_k, 16);
  // Two stages take v1.2's schedule's last two intervals; the dense layers twice top_k.
  EXPECT_EQ((*staged)->hip()->refresh, (std::vector<int64_t>{16, 8}));
  EXPECT_EQ((*staged)->hip()->dense_top_k, 32);
  // sinks, window, top_k, block_size, 2 x 4 per stage, dense_top_k, dense_layers
  EXPECT_EQ((*staged)->Params().size(), 14u);
  // Stages without a pool (0) take v1.2's: 4, and 1 in the last stage.
  absl::StatusOr<Attention> pools = Parse(
      {.mode = "hip", .stages = std::vector<HipStage>{{16, 64, 0}, {8, 32, 0}, {4, 16, 2}}});
  ASSERT_TRUE(pools.ok()) << pools.status();
  EXPECT_EQ((*pools)->hip()->stages,
            (std::vector<HipStage>{{16, 64, 4}, {8, 32, 4}, {4, 16, 2}}));
  absl::StatusOr<Attention> given =
      Parse({.mode = "hip", .refresh = std::vector<int64_t>{1, 2, 4},
             .dense_layers = std::vector<int64_t>{}, .dense_top_k = 2048});
  ASSERT_TRUE(given.ok()) << given.status();
  EXPECT_EQ((*given)->hip()->refresh, (std::vector<int64_t>{1, 2, 4}));
  EXPECT_TRUE((*given)->hip()->dense_layers.empty());
  EXPECT_EQ((*given)->hip()->dense_top_k, 2048);
  EXPECT_NE((*given)->PrefixCacheSalt(), (*a)->PrefixCacheSalt());
}

TEST(HipModeTest, BadParametersNameTheirField) {
  struct Bad {
    AttentionRequest request;
    std::string field;
  };
  using S = std::vector<HipStage>;
  using I = std::vector<int64_t>;
  const std::vector<Bad> bad = {
      {{.mode = "hip", .top_k = 100}, "longview.attention.top_k"},        // not a multiple of 8
      {{.mode = "hip", .top_k = 16384}, "longview.attention.top_k"},      // above stage 2's keep
      {{.mode = "hip", .top_k = 32, .stages = S{{16, 64}, {4, 16}}}, "longview.attention.top_k"},
      {{.mode = "hip", .stages = S{}}, "longview.attention.stages"},
      {{.mode = "hip", .stages = S{{16, 64}, {16, 32}}}, "longview.attention.stages[1]"},
      {{.mode = "hip", .stages = S{{16, 64}, {4, 128}}}, "longview.attention.stages[1]"},
      {{.mode = "hip", .stages = S{{16, 60}}}, "longview.attention.stages[0].keep"},
      {{.mode = "hip", .stages = S{{0, 64}}}, "longview.attention.stages[0].chunk"},
      {{.mode = "hip", .stages = S{{16, 64, -1}}}, "longview.attention.stages[0].pool"},
      {{.mode = "hip", .stages = S{{16, 64, 8}, {4, 16, 5000}}},
       "longview.attention.stages[1].pool"},
      {{.mode = "hip", .stages = S{{16, 8}}}, "longview.attention.stages[0].keep"},
      {{.mode = "hip", .stages = S(9, HipStage{1, 1})}, "longview.attention.stages"},
      {{.mode = "hip", .window = 0}, "longview.attention.window"},
      {{.mode = "hip", .sinks = -1}, "longview.attention.sinks"},
      {{.mode = "hip", .block_size = 0}, "longview.attention.block_size"},
      {{.mode = "hip", .refresh = I{32, 16}}, "longview.attention.refresh"},
      {{.mode = "hip", .refresh = I{32, 0, 8}}, "longview.attention.refresh[1]"},
      {{.mode = "hip", .stages = S{{16, 64}, {4, 16}}, .refresh = I{32, 16, 8}},
       "longview.attention.refresh"},
      {{.mode = "hip", .dense_layers = I{0, -1}}, "longview.attention.dense_layers[1]"},
      {{.mode = "hip", .dense_layers = I{2, 3, 2}}, "longview.attention.dense_layers[2]"},
      {{.mode = "hip", .dense_top_k = 100}, "longview.attention.dense_top_k"},
      {{.mode = "hip", .dense_top_k = 16384}, "longview.attention.dense_top_k"},
      {{.mode = "dense", .refresh = I{8}}, "longview.attention.refresh"},
      {{.mode = "sliding_window", .window = 8, .dense_layers = I{0}},
       "longview.attention.dense_layers"},
      {{.mode = "dense", .dense_top_k = 8}, "longview.attention.dense_top_k"},
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

TEST(HipModeTest, IntListsFromAFlag) {
  absl::StatusOr<std::vector<int64_t>> l = ParseIntList("32,16,8");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(*l, (std::vector<int64_t>{32, 16, 8}));
  ASSERT_TRUE(ParseIntList("").ok());
  EXPECT_TRUE(ParseIntList("")->empty());
  for (const char* bad : {"1,", "a", "1;2", "1,,2"}) {
    absl::StatusOr<std::vector<int64_t>> b = ParseIntList(bad);
    EXPECT_FALSE(b.ok()) << bad;
    EXPECT_NE(b.status().message().find("is not an integer"), std::string::npos) << b.status();
  }
}

TEST(HipModeTest, StagesFromAFlag) {
  absl::StatusOr<std::vector<HipStage>> s = ParseHipStages("256:32768,32:8192:2,8:2048");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, (std::vector<HipStage>{{256, 32768, 0}, {32, 8192, 2}, {8, 2048, 0}}));
  for (const char* bad : {"", "256", "256:x", "256:1:2:3", "256:1:y", "8:16,"}) {
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
  // Block from token 100: window from 69, masking window 32 - 16 = 16 tokens, middle [4, 85).
  EXPECT_EQ(HipWindowBegin(h, 100), 69);
  EXPECT_EQ(HipMiddle(h, 100), (cpu::HipRange{4, 85}));
  EXPECT_TRUE(HipPrunes(h, 100, 0));
  // Middle of 16 tokens or fewer: every key is read.
  EXPECT_EQ(HipMiddle(h, 35), (cpu::HipRange{4, 20}));
  EXPECT_FALSE(HipPrunes(h, 35, 0));
  EXPECT_TRUE(HipPrunes(h, 36, 0));
  EXPECT_EQ(HipMiddle(h, 10), (cpu::HipRange{4, 4}));
  EXPECT_EQ(HipWindowBegin(h, 10), 4);
  // A dense layer keeps twice top_k (32): it prunes from a middle of 33 tokens (t = 52).
  const Attention dense = SmallHip(4, 32, 16, 8, {1, 1}, {1});
  EXPECT_EQ(HipLayerStages(*dense->hip(), 0).back().keep, 16);
  EXPECT_EQ(HipLayerStages(*dense->hip(), 1).back().keep, 32);
  EXPECT_EQ(HipLayerStages(*dense->hip(), 1).front().keep, 64);
  EXPECT_TRUE(HipPrunes(*dense->hip(), 36, 0));
  EXPECT_FALSE(HipPrunes(*dense->hip(), 51, 1));
  EXPECT_TRUE(HipPrunes(*dense->hip(), 52, 1));
  // ... and prunes with chunk-indexed RoPE: stage 0 scans at most (1000 - 4 - 32) / 16 chunks,
  // rounded up.
  const cpu::HipMaskParams dp = HipMaskParamsFor(*dense->hip(), 1, 8, 2, 16, 1000);
  EXPECT_TRUE(dp.chunk_indexed);
  EXPECT_EQ(dp.scan_window, 16);
  EXPECT_EQ(dp.first_stage_chunks, 61);
  EXPECT_FALSE(HipMaskParamsFor(*dense->hip(), 0, 8, 2, 16, 1000).chunk_indexed);
  const cpu::HipMaskParams p = HipMaskParamsFor(h, 0, 8, 2, 16, 1000);
  EXPECT_TRUE(p.share_heads);
  EXPECT_FALSE(p.chunk_indexed);
  EXPECT_EQ(p.query_position, 32 - 16 + 1);
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

// Decode masks (refresh): with intervals {4, 2}, step 0 computes both stages, steps 2 and 6
// stage 2 again from stage 1's kept output with the step's query, step 4 both again, the odd
// steps reuse the last mask; what each step returns equals those stages run by hand, and the
// reused masks are not what pruning afresh would give. A dense layer keeps dense_top_k.
TEST(HipModeTest, DecodeMasksRefreshOnTheirSchedule) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  const int64_t nq = 4, nkv = 2, d = 16;
  test::KeyPool pool(8, nkv, d, 400, rng);
  for (int64_t t = 0; t < 400; ++t) {
    for (int64_t kh = 0; kh < nkv; ++kh) {
      for (int64_t j = 0; j < d; ++j) pool.Key(t, kh)[j] = normal(rng);
    }
  }
  const cpu::PagedKvView view = pool.View();
  const cpu::RopeTable rope(cpu::InvFrequencies({.head_dim = d, .theta = 10000.0}), d);
  const Attention mode = SmallHip(4, 32, 16, /*block_size=*/1, {4, 2}, /*dense_layers=*/{1});
  const HipAttention& h = *mode->hip();
  const cpu::HipMaskParams p = HipMaskParamsFor(h, 0, nq, nkv, d, 400);
  HipLayerMasks masks;
  cpu::HipHeadRanges stage1, last;
  std::vector<size_t> firsts;
  int reused_differs = 0;
  for (int64_t step = 0; step < 9; ++step) {
    const int64_t token = 300 + step;
    std::vector<float> q(nq * d);
    for (float& v : q) v = normal(rng);
    const size_t first = HipRefreshStage(h, masks);
    firsts.push_back(first);
    const cpu::HipHeadRanges got = HipDecodeMask(h, 0, p, view, rope, q.data(), token, masks);
    const cpu::HipHeadRanges fresh =
        cpu::HipSelect(p, view, rope, q.data(), 1, h.stages, HipMiddle(h, token));
    if (first == 0) {
      stage1 = cpu::HipRefineStage(p, view, rope, q.data(), 1, h.stages[0],
                                   cpu::HipHeadRanges(nkv, {HipMiddle(h, token)}));
      EXPECT_EQ(got, fresh) << "step " << step;
    } else if (first == 1) {
      EXPECT_EQ(got, cpu::HipRefineStage(p, view, rope, q.data(), 1, h.stages[1], stage1))
          << "step " << step;
    } else {
      EXPECT_EQ(got, last) << "step " << step;
    }
    reused_differs += first > 0 && got != fresh;
    last = got;
  }
  EXPECT_EQ(firsts, (std::vector<size_t>{0, 2, 1, 2, 0, 2, 1, 2, 0}));
  EXPECT_GT(reused_differs, 0);
  // Layer 1 is dense: its last stage keeps 32 tokens per head.
  HipLayerMasks dense_masks;
  std::vector<float> q(nq * d, 0.5f);
  const cpu::HipHeadRanges dense = HipDecodeMask(h, 1, HipMaskParamsFor(h, 1, nq, nkv, d, 400),
                                                 view, rope, q.data(), 300, dense_masks);
  for (const auto& head : dense) {
    int64_t tokens = 0;
    for (const cpu::HipRange& r : head) tokens += r.end - r.begin;
    EXPECT_EQ(tokens, 32);
  }
}

}  // namespace
}  // namespace longview
