// Attention mode hip in CpuModel (engine/cpu/cpu_model.cc, engine/attention/hip.h): while a
// block's middle fits top_k it is full attention bit for bit; once pruning starts the logits
// leave full attention's exactly there; prompt rows pruned one by one (block_size 1) equal the
// same tokens decoded one at a time; larger blocks stay close to them.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "engine/attention/hip.h"
#include "gtest/gtest.h"
#include "tests/support/attention.h"
#include "tests/support/cpu_logits.h"
#include "tests/support/cpu_model_of.h"
#include "tests/support/golden_model.h"

namespace longview {
namespace {

// The first token index whose logits differ between a and b (vocab logits per token), or -1.
int64_t FirstDifferent(const std::vector<float>& a, const std::vector<float>& b, int64_t vocab) {
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i) / vocab;
  }
  return -1;
}

TEST(HipAttentionTest, FullAttentionUntilTheMiddleOutgrowsTopK) {
  auto lm = test::GoldenLlama();
  std::unique_ptr<CpuModel> model = CpuModelOf(*lm);
  const int64_t vocab = lm->config.vocab_size;
  const std::vector<int32_t> ids = test::RandomPrompt(200, 7);
  // sinks 4, window 32, first chunk 16, top_k 16: the masking window is 32 - 16, so a block
  // starting at token t prunes once its middle [4, t - 15) holds more than 16 tokens.
  const Attention hip = SmallHip(4, 32, 16, /*block_size=*/1);
  const HipAttention& h = *hip->hip();
  int64_t first_pruned = 0;
  while (!HipPrunes(h, first_pruned, 0)) ++first_pruned;
  EXPECT_EQ(first_pruned, 36);
  // Kept chunks inside the window are read there: the first token that misses a key is the
  // first whose window starts more than top_k tokens after the sinks (t - 31 - 4 > 16).
  for (int64_t chunk : {1, 9, 200}) {
    SCOPED_TRACE(::testing::Message() << "chunk " << chunk);
    const std::vector<float> full = AllLogits(*model, ids, 8, chunk, FullAttention());
    const std::vector<float> pruned = AllLogits(*model, ids, 8, chunk, hip);
    const int64_t first = FirstDifferent(full, pruned, vocab);
    EXPECT_GE(first, first_pruned);
    EXPECT_LE(first, 52);
    for (float v : pruned) ASSERT_TRUE(std::isfinite(v));
  }
  // A top_k that covers every middle (at most [4, 184)) is full attention throughout.
  const std::vector<float> full = AllLogits(*model, ids, 8, 64, FullAttention());
  EXPECT_EQ(FirstDifferent(full, AllLogits(*model, ids, 8, 64,
                                               TestAttention(HipAttention{
                                                   .sinks = 4, .window = 32, .top_k = 180,
                                                   .stages = {{16, 192}, {4, 180}},
                                                   .refresh = {1, 1}, .dense_layers = {},
                                                   .dense_top_k = 180})), vocab), -1);
}

TEST(HipAttentionTest, PromptRowsPrunedAloneEqualDecodingThemOneByOne) {
  auto lm = test::GoldenLlama();
  std::unique_ptr<CpuModel> model = CpuModelOf(*lm);
  const std::vector<int32_t> ids = test::RandomPrompt(240, 9);
  for (int64_t page_size : {1, 16}) {
    SCOPED_TRACE(::testing::Message() << "page " << page_size);
    const Attention hip = SmallHip(4, 24, 16, /*block_size=*/1);
    const std::vector<float> one_by_one = AllLogits(*model, ids, page_size, 1, hip);
    EXPECT_EQ(AllLogits(*model, ids, page_size, 240, hip), one_by_one);
    EXPECT_EQ(AllLogits(*model, ids, page_size, 37, hip), one_by_one);
    // Blocks of 8 rows share their chunks and a window reaching back to the block's first row:
    // not the same keys, close logits.
    const std::vector<float> blocks = AllLogits(*model, ids, page_size, 240, SmallHip(4, 24, 16, 8));
    double diff = 0, scale = 0;
    for (size_t i = 0; i < blocks.size(); ++i) {
      diff = std::max(diff, std::fabs(static_cast<double>(blocks[i]) - one_by_one[i]));
      scale = std::max(scale, std::fabs(static_cast<double>(one_by_one[i])));
    }
    EXPECT_GT(diff, 0.0);
    EXPECT_LT(diff / scale, 0.5);
  }
}

// The dense layers keep dense_top_k in the last stage and prune with chunk-indexed RoPE: with
// every layer dense they read every key until their own middle outgrows dense_top_k (full
// attention bit for bit before token 52), and a dense layer changes the logits from pruning on,
// through its RoPE scheme alone (the same top-k) and through its top-k.
TEST(HipAttentionTest, DenseLayersKeepTheirOwnTopK) {
  auto lm = test::GoldenLlama();
  std::unique_ptr<CpuModel> model = CpuModelOf(*lm);
  const int64_t vocab = lm->config.vocab_size;
  const std::vector<int32_t> ids = test::RandomPrompt(160, 11);
  auto with = [](std::vector<int64_t> dense_layers, int64_t dense_top_k) {
    return TestAttention(HipAttention{.sinks = 4, .window = 32, .top_k = 16, .block_size = 1,
                                      .stages = {{16, 64}, {4, 16}}, .refresh = {1, 1},
                                      .dense_layers = std::move(dense_layers),
                                      .dense_top_k = dense_top_k});
  };
  std::vector<int64_t> all_layers(lm->config.num_hidden_layers);
  for (size_t l = 0; l < all_layers.size(); ++l) all_layers[l] = static_cast<int64_t>(l);
  const std::vector<float> full = AllLogits(*model, ids, 8, 40, FullAttention());
  const int64_t first_dense = FirstDifferent(full, AllLogits(*model, ids, 8, 40, with(all_layers, 32)), vocab);
  EXPECT_GE(first_dense, 52);  // a middle of 33 tokens
  EXPECT_NE(first_dense, -1);
  const std::vector<float> sparse = AllLogits(*model, ids, 8, 40, with({}, 32));
  const std::vector<float> same_k = AllLogits(*model, ids, 8, 40, with({1}, 16));
  const std::vector<float> more_k = AllLogits(*model, ids, 8, 40, with({1}, 32));
  for (const auto* other : {&same_k, &more_k}) {
    const int64_t first = FirstDifferent(sparse, *other, vocab);
    EXPECT_GE(first, 36);  // layer 0 prunes from token 36 on in both
    EXPECT_NE(first, -1);
  }
  EXPECT_NE(FirstDifferent(same_k, more_k, vocab), -1);
}

}  // namespace
}  // namespace longview
