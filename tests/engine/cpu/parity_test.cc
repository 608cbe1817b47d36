// The CPU engine against transformers: logits at every prompt position and 64-token greedy
// continuations of the golden checkpoints in tests/data/golden (tools/golden/make_golden.py).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/model/safetensors.h"
#include "gtest/gtest.h"
#include "engine/cpu/cpu_model.h"
#include "kvcache/block_pool.h"
#include "kvcache/block_table.h"
#include "kvcache/host_kv_storage.h"
#include "nlohmann/json.hpp"
#include "scheduler/generator.h"
#include "tests/support/attention.h"
#include "tests/support/cpu_logits.h"
#include "tests/support/cpu_model_of.h"
#include "tests/support/golden.h"
#include "tests/support/test_checkpoint.h"

namespace longview {
namespace {

const std::string kGoldenDir = std::string(LONGVIEW_TEST_DATA_DIR) + "/golden";

std::vector<GoldenPrompt> ReadGolden(const std::string& model) {
  return longview::ReadGolden(kGoldenDir + "/" + model);
}

// All-position logits of `ids` run through the model in chunks of `chunk` tokens.
std::vector<float> RunLogits(const LoadedModel& lm, const std::vector<int32_t>& ids,
                             int64_t page_size, int64_t chunk, const Attention& attention = {}) {
  std::unique_ptr<CpuModel> model = CpuModelOf(lm);
  return AllLogits(*model, ids, page_size, chunk, attention);
}

// max |a - b| / max |b|.
double RelMaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

class ParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParityTest, TokenizerMatchesGoldenIds) {
  auto lm = LoadedModel::Load(kGoldenDir + "/" + GetParam());
  ASSERT_TRUE(lm.ok()) << lm.status();
  for (const auto& g : ReadGolden(GetParam())) {
    EXPECT_EQ((*lm)->tokenizer->Encode(g.text), g.ids) << g.text;
  }
}

TEST_P(ParityTest, LogitsMatchTransformers) {
  auto lm = LoadedModel::Load(kGoldenDir + "/" + GetParam());
  ASSERT_TRUE(lm.ok()) << lm.status();
  auto golden = ReadGolden(GetParam());
  ASSERT_EQ(golden.size(), 3u);
  for (const auto& g : golden) {
    // Whole prompt at once, page sizes 1 / 8 / 16, and chunked prefill over cached pages.
    for (auto [page_size, chunk] :
         {std::pair<int64_t, int64_t>{16, 1 << 20}, {1, 1 << 20}, {8, 5}, {16, 1}}) {
      std::vector<float> logits = RunLogits(**lm, g.ids, page_size, chunk);
      ASSERT_EQ(logits.size(), g.logits.size());
      EXPECT_LE(RelMaxDiff(logits, g.logits), 1e-3)
          << GetParam() << " prompt of " << g.ids.size() << " tokens, page " << page_size
          << " chunk " << chunk;
    }
  }
}

TEST_P(ParityTest, GreedyContinuationMatchesTransformers) {
  auto lm = LoadedModel::Load(kGoldenDir + "/" + GetParam());
  ASSERT_TRUE(lm.ok()) << lm.status();
  for (const auto& g : ReadGolden(GetParam())) {
    GenerateOptions opt;
    opt.sampling.temperature = 0;
    opt.max_tokens = static_cast<int64_t>(g.greedy.size());
    opt.ignore_eos = true;
    auto r = Generate(**lm, g.ids, opt);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->output_tokens, g.greedy) << GetParam() << ": " << g.text;
  }
}

// Rewrites a transformers-5 config.json (rope_parameters, dtype) into the dialect most published
// checkpoints use (rope_theta, rope_scaling, torch_dtype), in a copy of the model folder.
void WriteLegacyCopy(const std::string& src, const std::string& dst) {
  namespace fs = std::filesystem;
  for (const auto& e : fs::directory_iterator(src)) {
    if (e.path().filename() != "config.json")
      fs::create_symlink(e.path(), fs::path(dst) / e.path().filename());
  }
  std::ifstream in(src + "/config.json");
  nlohmann::json cfg = nlohmann::json::parse(in);
  nlohmann::json rope = cfg["rope_parameters"];
  cfg.erase("rope_parameters");
  cfg.erase("layer_types");
  cfg["rope_theta"] = rope["rope_theta"];
  rope.erase("rope_theta");
  if (rope.value("rope_type", "default") != "default") {
    rope["type"] = rope["rope_type"];  // some checkpoints spell it "type"
    rope.erase("rope_type");
    cfg["rope_scaling"] = rope;
  }
  cfg["torch_dtype"] = cfg["dtype"];
  cfg.erase("dtype");
  std::ofstream(dst + "/config.json") << cfg.dump(2);
}

TEST_P(ParityTest, LegacyConfigDialectGivesSameLogits) {
  test::ScratchDir dir;
  WriteLegacyCopy(kGoldenDir + "/" + GetParam(), dir.path());
  std::ifstream in(dir.File("config.json"));
  nlohmann::json cfg = nlohmann::json::parse(in);
  ASSERT_FALSE(cfg.contains("rope_parameters"));
  ASSERT_TRUE(cfg.contains("rope_theta"));
  auto lm = LoadedModel::Load(dir.path());
  ASSERT_TRUE(lm.ok()) << lm.status();
  for (const auto& g : ReadGolden(GetParam())) {
    EXPECT_LE(RelMaxDiff(RunLogits(**lm, g.ids, 16, 1 << 20), g.logits), 1e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, ParityTest, ::testing::Values("llama", "mistral", "qwen2"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// Mistral's window (16) is shorter than the long prompts: attending to everything instead must
// change the logits well beyond tolerance, so the parity above really exercises the window.
TEST(MistralWindowTest, WindowIsExercised) {
  auto lm = LoadedModel::Load(kGoldenDir + "/mistral");
  ASSERT_TRUE(lm.ok()) << lm.status();
  ASSERT_EQ((*lm)->config.layer_window, std::vector<int64_t>(3, 16));
  auto golden = ReadGolden("mistral");
  int exercised = 0;
  for (const auto& g : golden) {
    if (g.ids.size() <= 16) continue;
    ++exercised;
    std::vector<float> full = RunLogits(**lm, g.ids, 16, 1 << 20, FullAttention());
    EXPECT_GT(RelMaxDiff(full, g.logits), 1e-2) << "prompt of " << g.ids.size() << " tokens";
  }
  EXPECT_GE(exercised, 2);
}

}  // namespace
}  // namespace longview
