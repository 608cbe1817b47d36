// The GGUF reader and model loader against files written by llama.cpp's `gguf` Python package
// (tools/gguf/make_test_gguf.py): dequantization equals gguf.quants.dequantize for every
// supported type, a tiny Llama's GGUF weights equal its safetensors weights (q/k order undone),
// its Q8_0 copy gives close logits, and malformed files fail naming the field or tensor.
#include "engine/model/gguf.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/cpu/cpu_model.h"
#include "engine/model/gguf_model.h"
#include "gtest/gtest.h"
#include "kvcache/block_pool.h"
#include "kvcache/block_table.h"
#include "kvcache/host_kv_storage.h"

namespace longview {
namespace {

const std::string kDir = std::string(LONGVIEW_TEST_DATA_DIR) + "/gguf";

std::vector<float> Dequantized(const GgufFile& g, const std::string& name) {
  const GgufTensor* t = g.FindTensor(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  std::vector<float> out(t->NumElements());
  absl::Status s = g.Dequantize(*t, out.data());
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

class GgufQuantTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufQuantTest, DequantizesAsGgufPyDoes) {
  auto g = GgufFile::Open(kDir + "/quant_blocks.gguf");
  ASSERT_TRUE(g.ok()) << g.status();
  const std::string type = GetParam();
  const GgufTensor* t = (*g)->FindTensor(type);
  ASSERT_NE(t, nullptr);
  EXPECT_STREQ(GgmlTypeName(t->type), type.c_str());
  EXPECT_EQ(t->dims, (std::vector<int64_t>{512, 2}));
  const std::vector<float> got = Dequantized(**g, type);
  const std::vector<float> want = Dequantized(**g, type + ".ref");
  ASSERT_EQ(got.size(), want.size());
  double max_abs = 0;
  for (float w : want) max_abs = std::max(max_abs, static_cast<double>(std::fabs(w)));
  ASSERT_GT(max_abs, 0.0);
  for (size_t i = 0; i < got.size(); ++i) {
    // One float32 rounding of difference at most (products may associate differently).
    ASSERT_NEAR(got[i], want[i], 1e-6 * max_abs) << type << " element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Types, GgufQuantTest,
                         ::testing::Values("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q4_K",
                                           "Q5_K", "Q6_K"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(GgufModelTest, TinyLlamaMatchesItsSafetensorsTwin) {
  auto hf_cfg = LoadModelConfig(kDir + "/tiny_llama/config.json");
  ASSERT_TRUE(hf_cfg.ok()) << hf_cfg.status();
  auto hf = LoadModelWeights(kDir + "/tiny_llama", *hf_cfg);
  ASSERT_TRUE(hf.ok()) << hf.status();
  auto g = GgufFile::Open(kDir + "/tiny_llama/model-f32.gguf");
  ASSERT_TRUE(g.ok()) << g.status();
  auto cfg = ModelConfigFromGguf(**g);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->architecture, Architecture::kLlama);
  EXPECT_EQ(cfg->vocab_size, hf_cfg->vocab_size);
  EXPECT_EQ(cfg->hidden_size, hf_cfg->hidden_size);
  EXPECT_EQ(cfg->intermediate_size, hf_cfg->intermediate_size);
  EXPECT_EQ(cfg->num_hidden_layers, hf_cfg->num_hidden_layers);
  EXPECT_EQ(cfg->num_attention_heads, hf_cfg->num_attention_heads);
  EXPECT_EQ(cfg->num_key_value_heads, hf_cfg->num_key_value_heads);
  EXPECT_EQ(cfg->head_dim, hf_cfg->head_dim);
  EXPECT_EQ(cfg->max_position_embeddings, hf_cfg->max_position_embeddings);
  EXPECT_EQ(cfg->rope, hf_cfg->rope);
  EXPECT_FLOAT_EQ(cfg->rms_norm_eps, hf_cfg->rms_norm_eps);
  EXPECT_EQ(cfg->tie_word_embeddings, hf_cfg->tie_word_embeddings);
  EXPECT_EQ(cfg->bos_token_ids, hf_cfg->bos_token_ids);
  EXPECT_EQ(cfg->eos_token_ids, hf_cfg->eos_token_ids);
  auto w = ModelWeightsFromGguf(**g, *cfg);
  ASSERT_TRUE(w.ok()) << w.status();
  ModelWeights& a = *w;
  ModelWeights& b = *hf;
  EXPECT_EQ(a.embed_tokens.data, b.embed_tokens.data);
  EXPECT_EQ(a.norm.data, b.norm.data);
  EXPECT_EQ(a.lm_head.data, b.lm_head.data);
  for (size_t l = 0; l < a.layers.size(); ++l) {
    SCOPED_TRACE(l);
    EXPECT_EQ(a.layers[l].q_proj.data, b.layers[l].q_proj.data);  // permutation undone
    EXPECT_EQ(a.layers[l].k_proj.data, b.layers[l].k_proj.data);
    EXPECT_EQ(a.layers[l].v_proj.data, b.layers[l].v_proj.data);
    EXPECT_EQ(a.layers[l].o_proj.data, b.layers[l].o_proj.data);
    EXPECT_EQ(a.layers[l].gate_proj.data, b.layers[l].gate_proj.data);
    EXPECT_EQ(a.layers[l].up_proj.data, b.layers[l].up_proj.data);
    EXPECT_EQ(a.layers[l].down_proj.data, b.layers[l].down_proj.data);
    EXPECT_EQ(a.layers[l].input_layernorm.data, b.layers[l].input_layernorm.data);
    EXPECT_EQ(a.layers[l].post_attention_layernorm.data, b.layers[l].post_attention_layernorm.data);
  }
}

// Last-position logits of `ids` through the CPU model.
std::vector<float> Logits(const ModelConfig& cfg, ModelWeights w, const std::vector<int32_t>& ids) {
  auto model = CpuModel::Create(cfg, std::make_shared<const ModelWeights>(std::move(w)));
  EXPECT_TRUE(model.ok()) << model.status();
  BlockTable table(16);
  BlockPool pool(table.BlocksNeeded(static_cast<int64_t>(ids.size())));
  HostKvStorage kv((*model)->kv_layout(16), pool.num_blocks());
  table.Append(*pool.Allocate(pool.num_blocks()));
  std::vector<float> logits;
  EXPECT_TRUE((*model)->Forward({ids, 0, &table}, kv, false, logits).ok());
  return logits;
}

TEST(GgufModelTest, Q8ZeroLogitsStayCloseToFloat32) {
  std::vector<float> ref, q8;
  const std::vector<int32_t> ids = {1, 17, 42, 99, 3, 64, 127, 5, 88, 23, 11, 70};
  for (const char* file : {"model-f32.gguf", "model-q8_0.gguf"}) {
    auto g = GgufFile::Open(kDir + "/tiny_llama/" + file);
    ASSERT_TRUE(g.ok()) << g.status();
    auto cfg = ModelConfigFromGguf(**g);
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    auto w = ModelWeightsFromGguf(**g, *cfg);
    ASSERT_TRUE(w.ok()) << w.status();
    (std::string(file) == "model-f32.gguf" ? ref : q8) = Logits(*cfg, *std::move(w), ids);
  }
  ASSERT_EQ(ref.size(), q8.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(ref[i] - q8[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(ref[i])));
  }
  EXPECT_GT(diff, 0.0);            // really quantized
  EXPECT_LT(diff, 0.05 * scale);   // and close
}

// A copy of `src` with `edit` applied to its bytes, at a temporary path.
std::string Mutated(const std::string& src, const std::function<void(std::string&)>& edit) {
  std::ifstream in(src, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  edit(bytes);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("gguf_test_" + std::to_string(::getpid()) + ".gguf"))
                               .string();
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

void ExpectOpenFails(const std::string& path, const std::string& needle) {
  auto g = GgufFile::Open(path);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument) << g.status();
  EXPECT_NE(g.status().message().find(needle), std::string::npos) << g.status();
  EXPECT_NE(g.status().message().find(path), std::string::npos) << g.status();
}

size_t Find(const std::string& bytes, const std::string& what) {
  const size_t at = bytes.find(what);
  EXPECT_NE(at, std::string::npos) << what;
  return at;
}

TEST(GgufMalformedTest, EachDefectIsNamed) {
  const std::string good = kDir + "/tiny_llama/model-f32.gguf";
  ExpectOpenFails(Mutated(good, [](std::string& b) { b[0] = 'X'; }), "bad magic");
  ExpectOpenFails(Mutated(good, [](std::string& b) { b[4] = 9; }), "version 9");
  ExpectOpenFails(Mutated(good, [](std::string& b) { b.resize(b.size() / 2); }),
                  "past the end of the file");
  ExpectOpenFails(Mutated(good, [](std::string& b) { b.resize(40); }), "past the end");
  // The tensor count claims far more than the file holds.
  ExpectOpenFails(Mutated(good, [](std::string& b) { b[8 + 7] = 0x7f; }), "tensor count");
  // A metadata string length running past the end.
  ExpectOpenFails(Mutated(good,
                          [](std::string& b) {
                            const size_t key = Find(b, "general.architecture");
                            // The value (a string) follows the key and its 4-byte type.
                            const size_t len = key + std::strlen("general.architecture") + 4;
                            b[len + 6] = 0x7f;
                          }),
                  "general.architecture");
  // An unknown tensor type, named with its tensor.
  ExpectOpenFails(Mutated(good,
                          [](std::string& b) {
                            const size_t name = Find(b, "output_norm.weight");
                            // name, n_dims (4), one dim (8), then the type.
                            b[name + std::strlen("output_norm.weight") + 4 + 8] = 77;
                          }),
                  "'output_norm.weight' has tensor type 77");
}

TEST(GgufMalformedTest, ModelLevelDefectsNameTheKeyOrTensor) {
  const std::string good = kDir + "/tiny_llama/model-f32.gguf";
  // A renamed tensor: the expected one is missing (and the renamed one would be unexpected).
  auto g = GgufFile::Open(Mutated(good, [](std::string& b) {
    b[Find(b, "blk.1.ffn_up.weight") + 4] = 'x';  // blk.1.fxn_up.weight
  }));
  ASSERT_TRUE(g.ok()) << g.status();
  auto cfg = ModelConfigFromGguf(**g);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  auto w = ModelWeightsFromGguf(**g, *cfg);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().message().find("missing tensor 'blk.1.ffn_up.weight'"), std::string::npos)
      << w.status();
  // A wrong architecture.
  auto h = GgufFile::Open(Mutated(good, [](std::string& b) {
    b.replace(Find(b, "llama"), 5, "gemma");  // general.architecture's value comes first
  }));
  ASSERT_TRUE(h.ok()) << h.status();
  auto bad = ModelConfigFromGguf(**h);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("general.architecture"), std::string::npos)
      << bad.status();
  // A missing hyper-parameter.
  auto k = GgufFile::Open(Mutated(good, [](std::string& b) {
    b.replace(Find(b, "llama.block_count"), 17, "llama.block_cnxxx");
  }));
  ASSERT_TRUE(k.ok()) << k.status();
  auto missing = ModelConfigFromGguf(**k);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("'llama.block_count' is missing"), std::string::npos)
      << missing.status();
}

}  // namespace
}  // namespace longview
