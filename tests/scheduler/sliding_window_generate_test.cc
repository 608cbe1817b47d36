// Generate under a sliding window frees the pages that left it: a long greedy stream never holds
// more than ceil(sinks/page) + ceil(window/page) + 1 KV pages, its tokens equal a greedy decode
// that keeps every page, and StreamingLLM (sinks > 0) streams past the model's context.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "scheduler/generator.h"
#include "gtest/gtest.h"
#include "tests/support/attention.h"
#include "engine/cpu/cpu_model.h"
#include "kvcache/block_pool.h"
#include "kvcache/block_table.h"
#include "kvcache/host_kv_storage.h"

namespace longview {
namespace {

const std::string kLlama = std::string(LONGVIEW_TEST_DATA_DIR) + "/golden/llama";

std::vector<int32_t> RandomPrompt(int64_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> tok(3, vocab - 1);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = tok(rng);
  return ids;
}

// Greedy decode keeping every page: the reference the windowed stream must reproduce.
std::vector<int32_t> GreedyKeepingAllPages(CpuModel& model, const std::vector<int32_t>& prompt,
                                           int64_t max_tokens, int64_t ps,
                                           const Attention& fo) {
  const int64_t total = static_cast<int64_t>(prompt.size()) + max_tokens;
  BlockTable table(ps);
  BlockPool pool(table.BlocksNeeded(total));
  HostKvStorage kv(model.kv_layout(ps), pool.num_blocks());
  table.Append(*pool.Allocate(pool.num_blocks()));
  std::vector<float> logits;
  EXPECT_TRUE(model.Forward({prompt, 0, &table}, kv, false, logits, fo).ok());
  std::vector<int32_t> out;
  for (int64_t pos = static_cast<int64_t>(prompt.size());; ++pos) {
    const int32_t tok =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(tok);
    if (static_cast<int64_t>(out.size()) == max_tokens) break;
    EXPECT_TRUE(model.Forward({std::span<const int32_t>(&tok, 1), pos, &table}, kv, false,
                              logits, fo).ok());
  }
  return out;
}

struct WindowCase {
  int64_t page_size, sinks, window, prompt_len, max_tokens;
};

TEST(SlidingWindowGenerateTest, PagesStayBoundedAndTokensMatchKeepingEveryPage) {
  auto lm = LoadedModel::Load(kLlama);
  ASSERT_TRUE(lm.ok()) << lm.status();
  const int32_t vocab = static_cast<int32_t>((*lm)->config.vocab_size);
  for (const WindowCase& c : {WindowCase{4, 3, 10, 37, 150}, WindowCase{16, 4, 24, 70, 120},
                              WindowCase{1, 2, 5, 9, 60}, WindowCase{8, 0, 12, 30, 100}}) {
    SCOPED_TRACE(::testing::Message() << "page " << c.page_size << " sinks " << c.sinks
                                      << " window " << c.window);
    GenerateOptions opt;
    opt.sampling.temperature = 0;
    opt.max_tokens = c.max_tokens;
    opt.ignore_eos = true;
    opt.page_size = c.page_size;
    opt.attention = SlidingWindow(c.window, c.sinks);
    const int64_t bound = (c.sinks + c.page_size - 1) / c.page_size +
                          (c.window + c.page_size - 1) / c.page_size + 1;
    int64_t calls = 0, last_tokens = 0, max_seen = 0;
    opt.on_kv_pages = [&](int64_t num_tokens, int64_t pages) {
      ++calls;
      EXPECT_GT(num_tokens, last_tokens);
      last_tokens = num_tokens;
      max_seen = std::max(max_seen, pages);
    };
    const std::vector<int32_t> prompt = RandomPrompt(c.prompt_len, vocab, 5);
    auto r = Generate(**lm, prompt, opt);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(static_cast<int64_t>(r->output_tokens.size()), c.max_tokens);
    EXPECT_LE(r->peak_kv_pages, bound);
    EXPECT_EQ(r->peak_kv_pages, max_seen);
    EXPECT_GE(r->peak_kv_pages, bound - 1);  // the window really fills its pages
    EXPECT_EQ(last_tokens, c.prompt_len + c.max_tokens - 1);
    EXPECT_GT(calls, c.max_tokens - 1);
    EXPECT_EQ(r->output_tokens,
              GreedyKeepingAllPages(**CpuModel::Create((*lm)->config, (*lm)->weights), prompt, c.max_tokens, c.page_size, opt.attention));
  }
}

// A model trained with a window on every layer (Mistral's sliding_window) frees the pages that
// left it without being asked: bounded pages, the same tokens as keeping every page.
TEST(SlidingWindowGenerateTest, ModelNativeWindowFreesPages) {
  auto lm = LoadedModel::Load(std::string(LONGVIEW_TEST_DATA_DIR) + "/golden/mistral");
  ASSERT_TRUE(lm.ok()) << lm.status();
  const int64_t window = (*lm)->config.layer_window[0];
  ASSERT_EQ(window, 16);
  EXPECT_EQ(Attention()->ReleasableWindow((*lm)->config), 16);
  EXPECT_EQ(FullAttention()->ReleasableWindow((*lm)->config), 0);  // full attention asked
  EXPECT_EQ(SlidingWindow(40)->ReleasableWindow((*lm)->config), 40);
  for (int64_t ps : {1, 4, 16}) {
    GenerateOptions opt;
    opt.sampling.temperature = 0;
    opt.max_tokens = 200;
    opt.ignore_eos = true;
    opt.page_size = ps;
    const std::vector<int32_t> prompt = RandomPrompt(50, 512, 9);
    auto r = Generate(**lm, prompt, opt);
    ASSERT_TRUE(r.ok()) << r.status();
    const int64_t bound = (window + ps - 1) / ps + 1;
    EXPECT_LE(r->peak_kv_pages, bound) << "page size " << ps;
    EXPECT_EQ(r->output_tokens, GreedyKeepingAllPages(**CpuModel::Create((*lm)->config, (*lm)->weights), prompt, 200, ps, {}))
        << "page size " << ps;
  }
  // A model with a full-attention layer keeps its pages (Llama here: no window at all).
  auto llama = LoadedModel::Load(kLlama);
  ASSERT_TRUE(llama.ok());
  EXPECT_EQ(Attention()->ReleasableWindow((*llama)->config), 0);
}

TEST(SlidingWindowGenerateTest, StreamingLlmGoesPastTheContextWithBoundedPages) {
  auto lm = LoadedModel::Load(kLlama);
  ASSERT_TRUE(lm.ok()) << lm.status();
  const int64_t context = (*lm)->config.max_position_embeddings;
  GenerateOptions opt;
  opt.sampling.temperature = 0;
  opt.max_tokens = context + 100;
  opt.ignore_eos = true;
  opt.page_size = 8;
  opt.attention = SlidingWindow(32, 4);
  auto r = Generate(**lm, RandomPrompt(20, 512, 6), opt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(static_cast<int64_t>(r->output_tokens.size()), context + 100);
  EXPECT_LE(r->peak_kv_pages, 1 + 4 + 1);

  // Without sinks positions are token indices: the context still limits the length.
  opt.attention = SlidingWindow(32);
  EXPECT_EQ(Generate(**lm, RandomPrompt(20, 512, 6), opt).status().code(),
            absl::StatusCode::kInvalidArgument);
  // And sinks + window must fit the context.
  opt.attention = SlidingWindow(context, 1);
  auto bad = Generate(**lm, RandomPrompt(20, 512, 6), opt);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("sinks"), absl::string_view::npos) << bad.status();
}

}  // namespace
}  // namespace longview
