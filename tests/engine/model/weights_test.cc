#include "engine/model/weights.h"

#include <string>
#include <vector>

#include "engine/model/model_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_checkpoint.h"

namespace longview {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

ModelConfig TinyConfig(const std::string& model_type = "llama") {
  absl::StatusOr<ModelConfig> cfg =
      ParseModelConfig(test::TinyConfigJson(model_type).dump(), "tiny/config.json");
  EXPECT_TRUE(cfg.ok()) << cfg.status();
  return cfg.value_or(ModelConfig());
}

// The float values a tensor written by TensorsForConfig holds.
std::vector<float> Values(const std::vector<test::TestTensor>& tensors, const std::string& name) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (tensors[i].name == name) {
      return test::PatternValues(test::NumElements(tensors[i].shape), static_cast<int64_t>(i));
    }
  }
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

template <typename T>
void ExpectError(const absl::StatusOr<T>& st, const std::vector<std::string>& fragments) {
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument) << st.status();
  for (const std::string& f : fragments) {
    EXPECT_THAT(std::string(st.status().message()), HasSubstr(f));
  }
}

TEST(WeightsTest, LoadsTinyLlama) {
  test::ScratchDir dir;
  const ModelConfig cfg = TinyConfig();
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg);
  tensors.push_back(test::MakeTensor("model.layers.0.self_attn.rotary_emb.inv_freq", {2}, {1, 2}));
  test::WriteSafetensors(dir.File("model.safetensors"), tensors);
  absl::StatusOr<ModelWeights> w = LoadModelWeights(dir.path(), cfg);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->layers.size(), 2u);
  EXPECT_THAT(w->embed_tokens.shape, ElementsAre(16, 8));
  EXPECT_EQ(w->embed_tokens.data, Values(tensors, "model.embed_tokens.weight"));
  EXPECT_THAT(w->layers[1].q_proj.shape, ElementsAre(16, 8));  // 4 heads * 4 dims
  EXPECT_THAT(w->layers[1].k_proj.shape, ElementsAre(8, 8));   // 2 kv heads * 4 dims
  EXPECT_THAT(w->layers[1].o_proj.shape, ElementsAre(8, 16));
  EXPECT_THAT(w->layers[1].down_proj.shape, ElementsAre(8, 12));
  EXPECT_EQ(w->layers[1].k_proj.data, Values(tensors, "model.layers.1.self_attn.k_proj.weight"));
  EXPECT_EQ(w->layers[0].down_proj.data, Values(tensors, "model.layers.0.mlp.down_proj.weight"));
  EXPECT_EQ(w->norm.data, Values(tensors, "model.norm.weight"));
  EXPECT_EQ(w->lm_head.data, Values(tensors, "lm_head.weight"));
  EXPECT_TRUE(w->layers[0].q_bias.data.empty());
}

TEST(WeightsTest, LoadsBF16AndF16Checkpoints) {
  for (const char* dtype : {"BF16", "F16"}) {
    test::ScratchDir dir;
    const ModelConfig cfg = TinyConfig();
    std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg, dtype);
    test::WriteSafetensors(dir.File("model.safetensors"), tensors);
    absl::StatusOr<ModelWeights> w = LoadModelWeights(dir.path(), cfg);
    ASSERT_TRUE(w.ok()) << dtype << ": " << w.status();
    EXPECT_EQ(w->layers[1].up_proj.data, Values(tensors, "model.layers.1.mlp.up_proj.weight"))
        << dtype;
  }
}

TEST(WeightsTest, TiedEmbeddingsWithoutLmHead) {
  test::ScratchDir dir;
  nlohmann::json j = test::TinyConfigJson();
  j["tie_word_embeddings"] = true;
  absl::StatusOr<ModelConfig> cfg = ParseModelConfig(j.dump(), "config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(*cfg);
  ASSERT_EQ(test::FindTensor(tensors, "model.norm.weight"), &tensors.back());  // no lm_head
  test::WriteSafetensors(dir.File("model.safetensors"), tensors);
  absl::StatusOr<ModelWeights> w = LoadModelWeights(dir.path(), *cfg);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->lm_head.data.empty());
  EXPECT_EQ(w->embed_tokens.data.size(), 16u * 8u);
}

TEST(WeightsTest, TiedEmbeddingsIgnoreStrayLmHead) {
  test::ScratchDir dir;
  nlohmann::json j = test::TinyConfigJson();
  j["tie_word_embeddings"] = true;
  absl::StatusOr<ModelConfig> cfg = ParseModelConfig(j.dump(), "config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(*cfg);
  tensors.push_back(test::MakeTensor("lm_head.weight", {16, 8}, test::PatternValues(128, 99)));
  test::WriteSafetensors(dir.File("model.safetensors"), tensors);
  absl::StatusOr<ModelWeights> w = LoadModelWeights(dir.path(), *cfg);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->lm_head.data.empty());
}

TEST(WeightsTest, Qwen2LoadsBiases) {
  test::ScratchDir dir;
  const ModelConfig cfg = TinyConfig("qwen2");
  ASSERT_TRUE(cfg.attention_bias);
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg);
  test::WriteSafetensors(dir.File("model.safetensors"), tensors);
  absl::StatusOr<ModelWeights> w = LoadModelWeights(dir.path(), cfg);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_THAT(w->layers[0].q_bias.shape, ElementsAre(16));
  EXPECT_THAT(w->layers[0].v_bias.shape, ElementsAre(8));
  EXPECT_EQ(w->layers[1].k_bias.data, Values(tensors, "model.layers.1.self_attn.k_proj.bias"));
}

TEST(WeightsTest, ShardedCheckpointLoads) {
  test::ScratchDir dir;
  const ModelConfig cfg = TinyConfig();
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg);
  const size_t half = tensors.size() / 2;
  test::WriteShardedSafetensors(
      dir.path(), {{"model-00001-of-00002.safetensors", {tensors.begin(), tensors.begin() + half}},
                   {"model-00002-of-00002.safetensors", {tensors.begin() + half, tensors.end()}}});
  absl::StatusOr<ModelWeights> w = LoadModelWeights(dir.path(), cfg);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->lm_head.data, Values(tensors, "lm_head.weight"));
  EXPECT_EQ(w->embed_tokens.data, Values(tensors, "model.embed_tokens.weight"));
}

// --- Malformed checkpoints: one test per case. ---

TEST(WeightsTest, MissingTensor) {
  test::ScratchDir dir;
  const ModelConfig cfg = TinyConfig();
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg);
  test::RemoveTensor(tensors, "model.layers.1.mlp.gate_proj.weight");
  test::WriteSafetensors(dir.File("model.safetensors"), tensors);
  ExpectError(LoadModelWeights(dir.path(), cfg),
              {dir.File("model.safetensors"),
               "missing tensor 'model.layers.1.mlp.gate_proj.weight' (expected shape [12, 8])"});
}

TEST(WeightsTest, MissingLmHeadWhenUntied) {
  test::ScratchDir dir;
  const ModelConfig cfg = TinyConfig();
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg);
  test::RemoveTensor(tensors, "lm_head.weight");
  test::WriteSafetensors(dir.File("model.safetensors"), tensors);
  ExpectError(LoadModelWeights(dir.path(), cfg),
              {dir.File("model.safetensors"), "missing tensor 'lm_head.weight'"});
}

TEST(WeightsTest, MissingQwen2Bias) {
  test::ScratchDir dir;
  const ModelConfig cfg = TinyConfig("qwen2");
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg);
  test::RemoveTensor(tensors, "model.layers.0.self_attn.v_proj.bias");
  test::WriteSafetensors(dir.File("model.safetensors"), tensors);
  ExpectError(
      LoadModelWeights(dir.path(), cfg),
      {dir.File("model.safetensors"), "missing tensor 'model.layers.0.self_attn.v_proj.bias'"});
}

TEST(WeightsTest, UnexpectedTensor) {
  test::ScratchDir dir;
  const ModelConfig cfg = TinyConfig();
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg);
  tensors.push_back(test::MakeTensor("model.layers.2.mlp.up_proj.weight", {1}, {0}));
  test::WriteSafetensors(dir.File("model.safetensors"), tensors);
  ExpectError(
      LoadModelWeights(dir.path(), cfg),
      {dir.File("model.safetensors"), "unexpected tensor 'model.layers.2.mlp.up_proj.weight'"});
}

TEST(WeightsTest, UnexpectedBiasForLlama) {
  test::ScratchDir dir;
  const ModelConfig cfg = TinyConfig();
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg);
  tensors.push_back(
      test::MakeTensor("model.layers.0.self_attn.q_proj.bias", {16}, test::PatternValues(16, 1)));
  test::WriteSafetensors(dir.File("model.safetensors"), tensors);
  ExpectError(
      LoadModelWeights(dir.path(), cfg),
      {dir.File("model.safetensors"), "unexpected tensor 'model.layers.0.self_attn.q_proj.bias'"});
}

TEST(WeightsTest, WrongShape) {
  test::ScratchDir dir;
  const ModelConfig cfg = TinyConfig();
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg);
  // Right element count, transposed: only the shape check can catch it.
  test::FindTensor(tensors, "model.layers.0.self_attn.o_proj.weight")->shape = {16, 8};
  test::WriteSafetensors(dir.File("model.safetensors"), tensors);
  ExpectError(LoadModelWeights(dir.path(), cfg),
              {dir.File("model.safetensors"),
               "tensor 'model.layers.0.self_attn.o_proj.weight' has wrong shape: expected [8, "
               "16], found [16, 8]"});
}

TEST(WeightsTest, NonFloatDtype) {
  test::ScratchDir dir;
  const ModelConfig cfg = TinyConfig();
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg);
  test::FindTensor(tensors, "model.norm.weight")->dtype = "I32";  // same 4-byte size as F32
  test::WriteSafetensors(dir.File("model.safetensors"), tensors);
  ExpectError(LoadModelWeights(dir.path(), cfg),
              {dir.File("model.safetensors"),
               "tensor 'model.norm.weight' has unsupported dtype I32 (expected F32, F16 or BF16)"});
}

TEST(WeightsTest, WrongShapeInShardNamesShard) {
  test::ScratchDir dir;
  const ModelConfig cfg = TinyConfig();
  std::vector<test::TestTensor> tensors = test::TensorsForConfig(cfg);
  test::FindTensor(tensors, "lm_head.weight")->shape = {8, 16};
  const size_t half = tensors.size() / 2;
  test::WriteShardedSafetensors(dir.path(),
                                {{"a.safetensors", {tensors.begin(), tensors.begin() + half}},
                                 {"b.safetensors", {tensors.begin() + half, tensors.end()}}});
  ExpectError(LoadModelWeights(dir.path(), cfg),
              {dir.File("b.safetensors"), "'lm_head.weight' has wrong shape"});
}

TEST(WeightsTest, NoCheckpointIsNotFound) {
  test::ScratchDir dir;
  absl::StatusOr<ModelWeights> w = LoadModelWeights(dir.path(), TinyConfig());
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(w.status().message()),
              AllOf(HasSubstr(dir.path()), HasSubstr("model.safetensors")));
}

}  // namespace
}  // namespace longview
