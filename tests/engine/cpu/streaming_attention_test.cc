// StreamingLLM attention in CpuModel (sliding_window with sinks): with a window covering the whole
// sequence it is dense attention bit for bit; on a one-layer model (whose keys and values are
// functions of the token alone) the logits of token t equal those of a dense run over the
// explicitly re-positioned sequence [sink tokens, window tokens]; pages outside the selection may
// be released; ForwardBatch equals Forward; bad options are rejected naming the field.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/cpu/cpu_model.h"
#include "engine/model/model_config.h"
#include "engine/model/weights.h"
#include "gtest/gtest.h"
#include "tests/support/attention.h"
#include "tests/support/cpu_logits.h"
#include "kvcache/block_pool.h"

namespace longview {
namespace {

const std::string kLlama = std::string(LONGVIEW_TEST_DATA_DIR) + "/golden/llama";

std::unique_ptr<CpuModel> LoadModel(int64_t num_layers = -1) {
  auto cfg = LoadModelConfig(kLlama + "/config.json");
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  auto w = LoadModelWeights(kLlama, *cfg);
  EXPECT_TRUE(w.ok()) << w.status();
  if (num_layers > 0) {  // keep the first layers only: still a real model
    cfg->num_hidden_layers = num_layers;
    cfg->layer_window.resize(num_layers);
    w->layers.resize(num_layers);
  }
  auto m = CpuModel::Create(*cfg, std::make_shared<const ModelWeights>(std::move(*w)));
  EXPECT_TRUE(m.ok()) << m.status();
  return std::move(*m);
}

std::vector<int32_t> RandomTokens(int64_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(3, vocab - 1);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = tok(rng);
  return ids;
}

TEST(StreamingAttentionTest, WindowCoveringTheSequenceIsDenseBitForBit) {
  auto model = LoadModel();
  const std::vector<int32_t> ids = RandomTokens(45, model->config().vocab_size, 11);
  for (int64_t chunk : {1, 7, 45}) {
    std::vector<float> dense = AllLogits(*model, ids, 8, chunk, FullAttention());
    std::vector<float> sw = AllLogits(*model, ids, 8, chunk, SlidingWindow(41, 4));
    ASSERT_EQ(dense.size(), sw.size());
    EXPECT_EQ(std::memcmp(dense.data(), sw.data(), dense.size() * sizeof(float)), 0)
        << "chunk " << chunk;
  }
}

TEST(StreamingAttentionTest, OneLayerEqualsDenseOverTheRepositionedSequence) {
  auto model = LoadModel(/*num_layers=*/1);
  const int64_t sinks = 3, window = 9, n = 40, vocab = model->config().vocab_size;
  const std::vector<int32_t> ids = RandomTokens(n, static_cast<int32_t>(vocab), 12);
  const Attention fo = SlidingWindow(window, sinks);
  for (int64_t chunk : {1, 6, 40}) {
    std::vector<float> sw = AllLogits(*model, ids, 4, chunk, fo);
    int64_t checked = 0;
    for (int64_t t = sinks + window; t < n; t += 5, ++checked) {
      // The cache StreamingLLM holds for token t: the sinks, then the last `window` tokens.
      std::vector<int32_t> repositioned(ids.begin(), ids.begin() + sinks);
      repositioned.insert(repositioned.end(), ids.begin() + t - window + 1, ids.begin() + t + 1);
      std::vector<float> ref = AllLogits(*model, repositioned, 4, 1 << 20, FullAttention());
      double diff = 0, scale = 0;
      for (int64_t v = 0; v < vocab; ++v) {
        const double r = ref[(repositioned.size() - 1) * vocab + v];
        diff = std::max(diff, std::fabs(static_cast<double>(sw[t * vocab + v]) - r));
        scale = std::max(scale, std::fabs(r));
      }
      EXPECT_LT(diff / scale, 1e-5) << "chunk " << chunk << " token " << t;
      // And it is not dense attention: the window really cut the sequence.
      std::vector<float> dense = AllLogits(*model, std::vector<int32_t>(ids.begin(), ids.begin() + t + 1),
                                     4, 1 << 20, FullAttention());
      double dd = 0;
      for (int64_t v = 0; v < vocab; ++v) {
        dd = std::max<double>(dd, std::fabs(sw[t * vocab + v] - dense[t * vocab + v]));
      }
      EXPECT_GT(dd / scale, 1e-3) << "token " << t;
    }
    EXPECT_GE(checked, 5);
  }
}

TEST(StreamingAttentionTest, ReleasedPagesAreNotReadAndBatchEqualsForward) {
  auto model = LoadModel();
  const int64_t ps = 4, sinks = 2, window = 7, n = 30, vocab = model->config().vocab_size;
  const std::vector<int32_t> ids = RandomTokens(n, static_cast<int32_t>(vocab), 13);
  const Attention fo = SlidingWindow(window, sinks);
  std::vector<float> ref = AllLogits(*model, ids, ps, 1, fo);

  // Decode token by token, overwriting and releasing (-1) every page that left the window.
  BlockTable table(ps);
  BlockPool pool(table.BlocksNeeded(n));
  HostKvStorage kv(model->kv_layout(ps), pool.num_blocks());
  auto blocks = pool.Allocate(pool.num_blocks());
  ASSERT_TRUE(blocks.has_value());
  table.Append(*blocks);
  std::vector<int32_t> ids_table = table.blocks();
  std::vector<float> logits;
  for (int64_t t = 0; t < n; ++t) {
    // Keep pages holding a sink or a token >= t - window + 1; poison and drop the rest.
    for (int64_t b = 0; b < static_cast<int64_t>(ids_table.size()); ++b) {
      const bool sink = b * ps < sinks, in_window = (b + 1) * ps > t - window + 1;
      if (!sink && !in_window && ids_table[b] >= 0) {
        std::fill(kv.Page(ids_table[b]), kv.Page(ids_table[b]) + kv.layout().PageElements(),
                  std::nanf(""));
        ids_table[b] = -1;
      }
    }
    BatchSequence seq{.tokens = std::span<const int32_t>(&ids[t], 1),
                      .start_pos = t,
                      .block_ids = ids_table,
                      .need_logits = true,
                      .attention = fo};
    ASSERT_TRUE(model->ForwardBatch(std::span<const BatchSequence>(&seq, 1), kv, logits).ok());
    EXPECT_EQ(std::memcmp(logits.data(), &ref[t * vocab], vocab * sizeof(float)), 0)
        << "token " << t;
  }
}

}  // namespace
}  // namespace longview
