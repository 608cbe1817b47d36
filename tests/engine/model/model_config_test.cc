#include "engine/model/model_config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_checkpoint.h"

namespace longview {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr const char* kSource = "/models/x/config.json";

absl::StatusOr<ModelConfig> Parse(const json& j) { return ParseModelConfig(j.dump(), kSource); }

// Asserts an InvalidArgument naming the source file and containing every fragment.
void ExpectInvalid(const json& j, const std::string& field, const std::string& problem) {
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_FALSE(cfg.ok()) << j.dump();
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(cfg.status().message()),
              AllOf(HasSubstr(kSource), HasSubstr(field), HasSubstr(problem)));
}

// Llama 3.1 8B's config.json as most checkpoints publish it.
json Llama3OldDialect() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072,
    "mlp_bias": false, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256
  })");
}

// The same model as transformers 5 writes it.
json Llama3NewDialect() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
    "dtype": "bfloat16", "eos_token_id": [128001, 128008, 128009], "head_dim": 128,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false,
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_parameters": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                        "original_max_position_embeddings": 8192, "rope_theta": 500000.0,
                        "rope_type": "llama3"},
    "tie_word_embeddings": false, "transformers_version": "5.0.0", "use_cache": true,
    "vocab_size": 128256
  })");
}

TEST(ModelConfigTest, Llama3OldDialectParses) {
  absl::StatusOr<ModelConfig> cfg = Parse(Llama3OldDialect());
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->architecture, Architecture::kLlama);
  EXPECT_EQ(cfg->vocab_size, 128256);
  EXPECT_EQ(cfg->hidden_size, 4096);
  EXPECT_EQ(cfg->intermediate_size, 14336);
  EXPECT_EQ(cfg->num_hidden_layers, 32);
  EXPECT_EQ(cfg->num_attention_heads, 32);
  EXPECT_EQ(cfg->num_key_value_heads, 8);
  EXPECT_EQ(cfg->head_dim, 128);
  EXPECT_DOUBLE_EQ(cfg->rms_norm_eps, 1e-5);
  EXPECT_EQ(cfg->rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(cfg->rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(cfg->rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(cfg->rope.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(cfg->rope.high_freq_factor, 4.0);
  EXPECT_EQ(cfg->rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(cfg->max_position_embeddings, 131072);
  EXPECT_FALSE(cfg->tie_word_embeddings);
  EXPECT_FALSE(cfg->attention_bias);
  EXPECT_EQ(cfg->layer_window, std::vector<int64_t>(32, 0));
  EXPECT_EQ(cfg->bos_token_ids, std::vector<int64_t>({128000}));
  EXPECT_EQ(cfg->eos_token_ids, std::vector<int64_t>({128001, 128008, 128009}));
  EXPECT_EQ(cfg->torch_dtype, "bfloat16");
}

TEST(ModelConfigTest, BothDialectsParseToEqualConfigs) {
  absl::StatusOr<ModelConfig> old_cfg = Parse(Llama3OldDialect());
  absl::StatusOr<ModelConfig> new_cfg = Parse(Llama3NewDialect());
  ASSERT_TRUE(old_cfg.ok()) << old_cfg.status();
  ASSERT_TRUE(new_cfg.ok()) << new_cfg.status();
  EXPECT_TRUE(*old_cfg == *new_cfg);
  EXPECT_EQ(new_cfg->rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(new_cfg->rope.theta, 500000.0);
}

TEST(ModelConfigTest, LoadsFromFile) {
  test::ScratchDir dir;
  test::WriteFile(dir.File("config.json"), Llama3OldDialect().dump());
  absl::StatusOr<ModelConfig> cfg = LoadModelConfig(dir.File("config.json"));
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->hidden_size, 4096);
}

TEST(ModelConfigTest, DefaultsWhenOptionalFieldsAbsent) {
  json j = test::TinyConfigJson("llama");
  for (const char* f :
       {"architectures", "num_key_value_heads", "rms_norm_eps", "rope_theta",
        "max_position_embeddings", "tie_word_embeddings", "bos_token_id", "torch_dtype"}) {
    j.erase(f);
  }
  j["head_dim"] = nullptr;
  j["eos_token_id"] = nullptr;
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->architecture, Architecture::kLlama);  // from model_type
  EXPECT_EQ(cfg->num_key_value_heads, 4);
  EXPECT_EQ(cfg->head_dim, 2);  // hidden 8 / 4 heads
  EXPECT_DOUBLE_EQ(cfg->rms_norm_eps, 1e-6);
  EXPECT_EQ(cfg->rope, RopeConfig());
  EXPECT_EQ(cfg->max_position_embeddings, 2048);
  EXPECT_FALSE(cfg->tie_word_embeddings);
  EXPECT_TRUE(cfg->bos_token_ids.empty());
  EXPECT_TRUE(cfg->eos_token_ids.empty());
  EXPECT_EQ(cfg->torch_dtype, "");
}

TEST(ModelConfigTest, LinearRopeScaling) {
  json j = test::TinyConfigJson("llama");
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->rope.type, RopeType::kLinear);
  EXPECT_DOUBLE_EQ(cfg->rope.factor, 4.0);
}

TEST(ModelConfigTest, DefaultRopeParametersNewDialect) {
  json j = test::TinyConfigJson("llama");
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000.0}};
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->rope.type, RopeType::kDefault);
  EXPECT_DOUBLE_EQ(cfg->rope.theta, 250000.0);
}

TEST(ModelConfigTest, LlamaAttentionBias) {
  json j = test::TinyConfigJson("llama");
  j["attention_bias"] = true;
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_TRUE(cfg->attention_bias);
}

TEST(ModelConfigTest, MistralSlidingWindowOnEveryLayer) {
  json j = test::TinyConfigJson("mistral");
  j["sliding_window"] = 4096;
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->architecture, Architecture::kMistral);
  EXPECT_EQ(cfg->layer_window, std::vector<int64_t>({4096, 4096}));
  EXPECT_FALSE(cfg->attention_bias);
}

TEST(ModelConfigTest, MistralNullSlidingWindowIsFullAttention) {
  json j = test::TinyConfigJson("mistral");
  j["sliding_window"] = nullptr;
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->layer_window, std::vector<int64_t>({0, 0}));
}

TEST(ModelConfigTest, MistralAbsentSlidingWindowUsesTransformersDefault) {
  json j = test::TinyConfigJson("mistral");
  j.erase("sliding_window");
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->layer_window, std::vector<int64_t>({4096, 4096}));
}

TEST(ModelConfigTest, Qwen2SlidingWindowFromMaxWindowLayers) {
  json j = test::TinyConfigJson("qwen2");
  j["num_hidden_layers"] = 5;
  j["use_sliding_window"] = true;
  j["sliding_window"] = 32;
  j["max_window_layers"] = 3;
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->architecture, Architecture::kQwen2);
  EXPECT_TRUE(cfg->attention_bias);  // Qwen2 always has q/k/v biases
  EXPECT_EQ(cfg->layer_window, std::vector<int64_t>({0, 0, 0, 32, 32}));
}

TEST(ModelConfigTest, Qwen2WithoutUseSlidingWindowIsFullAttention) {
  json j = test::TinyConfigJson("qwen2");
  j["use_sliding_window"] = false;
  j["sliding_window"] = 131072;
  j["max_window_layers"] = 0;
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->layer_window, std::vector<int64_t>({0, 0}));
}

TEST(ModelConfigTest, LayerTypesSetPerLayerWindows) {
  json j = test::TinyConfigJson("qwen2");
  j["num_hidden_layers"] = 4;
  j["sliding_window"] = 128;
  j["use_sliding_window"] = false;  // layer_types wins
  j["layer_types"] = {"sliding_attention", "full_attention", "sliding_attention", "full_attention"};
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->layer_window, std::vector<int64_t>({128, 0, 128, 0}));
}

TEST(ModelConfigTest, SingleEosIdAndDtypeField) {
  json j = test::TinyConfigJson("llama");
  j["eos_token_id"] = 7;
  j.erase("torch_dtype");
  j["dtype"] = "float16";
  absl::StatusOr<ModelConfig> cfg = Parse(j);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->eos_token_ids, std::vector<int64_t>({7}));
  EXPECT_EQ(cfg->torch_dtype, "float16");
}

// --- Malformed inputs: one test per case, each checking the code and the message. ---

TEST(ModelConfigTest, MissingFileIsNotFound) {
  test::ScratchDir dir;
  const std::string path = dir.File("config.json");
  absl::StatusOr<ModelConfig> cfg = LoadModelConfig(path);
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(cfg.status().message()), AllOf(HasSubstr(path), HasSubstr("not found")));
}

TEST(ModelConfigTest, InvalidJsonInFile) {
  test::ScratchDir dir;
  const std::string path = dir.File("config.json");
  test::WriteFile(path, R"({"hidden_size": 8,)");
  absl::StatusOr<ModelConfig> cfg = LoadModelConfig(path);
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(cfg.status().message()),
              AllOf(HasSubstr(path), HasSubstr("invalid JSON")));
}

// fuzz/model_config_fuzzer: a number too large for a double is nlohmann's out_of_range, not a
// parse_error; it used to escape ParseModelConfig (and end `longview serve`).
TEST(ModelConfigTest, NumberOverflowIsInvalidJson) {
  absl::StatusOr<ModelConfig> cfg = ParseModelConfig(R"({"rms_norm_eps": 1e4052})", kSource);
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(cfg.status().message()),
              AllOf(HasSubstr(kSource), HasSubstr("invalid JSON"), HasSubstr("1e4052")));
}

TEST(ModelConfigTest, TopLevelNotAnObject) {
  absl::StatusOr<ModelConfig> cfg = ParseModelConfig("[1, 2]", kSource);
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(cfg.status().message()),
              AllOf(HasSubstr(kSource), HasSubstr("JSON object")));
}

TEST(ModelConfigTest, UnknownArchitecture) {
  json j = test::TinyConfigJson("llama");
  j["architectures"] = {"GPT2LMHeadModel"};
  ExpectInvalid(j, "architectures", "unknown architecture 'GPT2LMHeadModel'");
}

TEST(ModelConfigTest, UnknownModelTypeFallback) {
  json j = test::TinyConfigJson("llama");
  j.erase("architectures");
  j["model_type"] = "gpt2";
  ExpectInvalid(j, "model_type", "unknown architecture 'gpt2'");
}

TEST(ModelConfigTest, MissingRequiredField) {
  json j = test::TinyConfigJson("llama");
  j.erase("hidden_size");
  ExpectInvalid(j, "'hidden_size'", "missing required field");
}

TEST(ModelConfigTest, IllTypedField) {
  json j = test::TinyConfigJson("llama");
  j["num_hidden_layers"] = "two";
  ExpectInvalid(j, "'num_hidden_layers'", "expected an integer");
}

TEST(ModelConfigTest, NonPositiveSize) {
  json j = test::TinyConfigJson("llama");
  j["intermediate_size"] = 0;
  ExpectInvalid(j, "'intermediate_size'", "must be positive");
}

// A layer count below the size cap (2^31) but far beyond any model: refused before anything is
// allocated per layer (it used to allocate 16 GiB of layer windows, then fail in the weights).
TEST(ModelConfigTest, NumHiddenLayersCapped) {
  json j = test::TinyConfigJson("llama");
  j["num_hidden_layers"] = int64_t{1} << 31;
  ExpectInvalid(j, "'num_hidden_layers'", "unreasonably large: 2147483648 (at most 4096)");
  j["num_hidden_layers"] = 4097;
  ExpectInvalid(j, "'num_hidden_layers'", "unreasonably large");
  j["num_hidden_layers"] = 4096;
  absl::StatusOr<ModelConfig> cfg = ParseModelConfig(j.dump(), kSource);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->layer_window.size(), 4096u);
}

TEST(ModelConfigTest, HeadsNotDivisibleByKvHeads) {
  json j = test::TinyConfigJson("llama");
  j["num_key_value_heads"] = 3;
  ExpectInvalid(j, "'num_key_value_heads'", "does not divide num_attention_heads");
}

TEST(ModelConfigTest, HeadsNotDividingHiddenWithoutHeadDim) {
  json j = test::TinyConfigJson("llama");
  j.erase("head_dim");
  j["num_attention_heads"] = 6;
  j["num_key_value_heads"] = 3;
  ExpectInvalid(j, "'num_attention_heads'", "does not divide hidden_size");
}

TEST(ModelConfigTest, OddHeadDim) {
  json j = test::TinyConfigJson("llama");
  j["head_dim"] = 3;
  ExpectInvalid(j, "'head_dim'", "must be even");
}

TEST(ModelConfigTest, NonPositiveRmsNormEps) {
  json j = test::TinyConfigJson("llama");
  j["rms_norm_eps"] = 0.0;
  ExpectInvalid(j, "'rms_norm_eps'", "positive");
}

TEST(ModelConfigTest, UnsupportedRopeTypeOldDialect) {
  json j = test::TinyConfigJson("llama");
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  ExpectInvalid(j, "rope_scaling.type", "unsupported rope type 'yarn'");
}

TEST(ModelConfigTest, UnsupportedRopeTypeNewDialect) {
  json j = test::TinyConfigJson("llama");
  j["rope_parameters"] = {{"rope_type", "dynamic"}, {"rope_theta", 10000.0}, {"factor", 2.0}};
  ExpectInvalid(j, "rope_parameters.rope_type", "unsupported rope type 'dynamic'");
}

TEST(ModelConfigTest, NonPositiveRopeFactor) {
  json j = test::TinyConfigJson("llama");
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", -2.0}};
  ExpectInvalid(j, "rope_scaling.factor", "positive");
}

TEST(ModelConfigTest, Llama3RopeMissingParameter) {
  json j = Llama3OldDialect();
  j["rope_scaling"].erase("low_freq_factor");
  ExpectInvalid(j, "rope_scaling.low_freq_factor", "missing required field");
}

TEST(ModelConfigTest, UnknownLayerType) {
  json j = test::TinyConfigJson("llama");
  j["sliding_window"] = 16;
  j["layer_types"] = {"full_attention", "chunked_attention"};
  ExpectInvalid(j, "'layer_types'", "unsupported layer type 'chunked_attention'");
}

TEST(ModelConfigTest, LayerTypesWrongLength) {
  json j = test::TinyConfigJson("llama");
  j["layer_types"] = {"full_attention"};
  ExpectInvalid(j, "'layer_types'", "num_hidden_layers (2)");
}

TEST(ModelConfigTest, SlidingLayerWithoutWindow) {
  json j = test::TinyConfigJson("llama");
  j["layer_types"] = {"sliding_attention", "full_attention"};
  ExpectInvalid(j, "'sliding_window'", "must be a positive integer");
}

TEST(ModelConfigTest, BadEosTokenId) {
  json j = test::TinyConfigJson("llama");
  j["eos_token_id"] = {2, "x"};
  ExpectInvalid(j, "'eos_token_id'", "non-negative token id");
}

TEST(ModelConfigTest, UnsupportedActivation) {
  json j = test::TinyConfigJson("llama");
  j["hidden_act"] = "gelu";
  ExpectInvalid(j, "'hidden_act'", "unsupported activation 'gelu'");
}

TEST(ModelConfigTest, UnsupportedDtype) {
  json j = test::TinyConfigJson("llama");
  j["torch_dtype"] = "int8";
  ExpectInvalid(j, "'torch_dtype'", "unsupported dtype 'int8'");
}

}  // namespace
}  // namespace longview
