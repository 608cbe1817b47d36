// Test helpers that build Hugging Face model folders on disk: a scratch directory, a
// safetensors writer (well-formed or byte-exact raw, for malformed cases), and a tiny config with
// every tensor it implies.
//
//   ScratchDir dir;
//   WriteConfig(dir.File("config.json"), TinyConfigJson("llama"));
//   WriteSafetensors(dir.File("model.safetensors"), TensorsForConfig(cfg));
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/model_config.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace longview::test {

// A fresh directory under the GoogleTest temp dir, removed on destruction.
class ScratchDir {
 public:
  ScratchDir() {
    std::random_device rd;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string stem = info != nullptr ? absl::StrCat(info->test_suite_name(), ".", info->name())
                                       : std::string("scratch");
    path_ =
        std::filesystem::path(::testing::TempDir()) / absl::StrCat("lv_", stem, "_", rd(), rd());
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  std::string path() const { return path_.string(); }
  std::string File(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void WriteFile(const std::string& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct TestTensor {
  std::string name;
  std::string dtype;  // safetensors spelling: "F32", "F16", "BF16", "I32", ...
  std::vector<int64_t> shape;
  std::string bytes;  // little-endian payload
};

template <typename T>
std::string RawBytes(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

inline uint32_t FloatBits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  return b;
}

// Exact only for values representable in bfloat16 (the test values are).
inline uint16_t FloatToBF16Bits(float f) { return static_cast<uint16_t>(FloatBits(f) >> 16); }

// Exact only for zero and normal binary16 values without extra mantissa bits (the test values).
inline uint16_t FloatToF16Bits(float f) {
  const uint32_t b = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((b >> 16) & 0x8000u);
  if ((b & 0x7fffffffu) == 0) return sign;
  const int exponent = static_cast<int>((b >> 23) & 0xffu) - 127 + 15;
  EXPECT_TRUE(exponent > 0 && exponent < 31 && (b & 0x1fffu) == 0) << f << " not exact in f16";
  return static_cast<uint16_t>(sign | (exponent << 10) | ((b >> 13) & 0x3ffu));
}

// `values` encoded as `dtype` ("F32", "F16" or "BF16").
inline TestTensor MakeTensor(std::string name, std::vector<int64_t> shape,
                             const std::vector<float>& values, const std::string& dtype = "F32") {
  TestTensor t{std::move(name), dtype, std::move(shape), ""};
  if (dtype == "F32") {
    t.bytes = RawBytes(values);
  } else {
    std::vector<uint16_t> half;
    for (float v : values) half.push_back(dtype == "F16" ? FloatToF16Bits(v) : FloatToBF16Bits(v));
    t.bytes = RawBytes(half);
  }
  return t;
}

inline int64_t NumElements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Deterministic values, exact in F32, F16 and BF16, distinct per `salt`.
inline std::vector<float> PatternValues(int64_t n, int64_t salt) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>((i + 7 * salt) % 31 - 15) * 0.5f;
  return v;
}

// The JSON header of a well-formed file, offsets packed in order, padded with spaces to a
// multiple of 8 like the reference writer.
inline std::string SafetensorsHeader(const std::vector<TestTensor>& tensors,
                                     const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const TestTensor& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  return text;
}

// The 8-byte little-endian length prefix.
inline std::string LengthPrefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xffu);
  return out;
}

// Byte-exact file: prefix (the header's length unless `header_len` overrides it), header, data.
inline void WriteRawSafetensors(const std::string& path, std::string_view header,
                                std::string_view data,
                                std::optional<uint64_t> header_len = std::nullopt) {
  std::string bytes = LengthPrefix(header_len.value_or(header.size()));
  bytes.append(header);
  bytes.append(data);
  WriteFile(path, bytes);
}

inline std::string SafetensorsBytes(const std::vector<TestTensor>& tensors,
                                    const std::map<std::string, std::string>& metadata = {}) {
  const std::string header = SafetensorsHeader(tensors, metadata);
  std::string out = absl::StrCat(LengthPrefix(header.size()), header);
  for (const TestTensor& t : tensors) out += t.bytes;
  return out;
}

inline void WriteSafetensors(const std::string& path, const std::vector<TestTensor>& tensors,
                             const std::map<std::string, std::string>& metadata = {}) {
  WriteFile(path, SafetensorsBytes(tensors, metadata));
}

// Writes `shards` (file name -> tensors) into `dir` plus model.safetensors.index.json mapping
// every tensor to its shard.
inline void WriteShardedSafetensors(const std::string& dir,
                                    const std::map<std::string, std::vector<TestTensor>>& shards) {
  nlohmann::json weight_map = nlohmann::json::object();
  size_t total = 0;
  for (const auto& [file, tensors] : shards) {
    WriteSafetensors((std::filesystem::path(dir) / file).string(), tensors);
    for (const TestTensor& t : tensors) {
      weight_map[t.name] = file;
      total += t.bytes.size();
    }
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  WriteFile((std::filesystem::path(dir) / "model.safetensors.index.json").string(), index.dump(2));
}

// A tiny config.json (old dialect) for `model_type` llama, mistral or qwen2: vocab 16, hidden 8,
// intermediate 12, 2 layers, 4 heads of 4 dims (head_dim != hidden / heads on purpose), 2 KV heads.
inline nlohmann::json TinyConfigJson(const std::string& model_type = "llama") {
  std::string arch = model_type == "mistral" ? "MistralForCausalLM"
                     : model_type == "qwen2" ? "Qwen2ForCausalLM"
                                             : "LlamaForCausalLM";
  nlohmann::json j = {{"architectures", {arch}},
                      {"model_type", model_type},
                      {"vocab_size", 16},
                      {"hidden_size", 8},
                      {"intermediate_size", 12},
                      {"num_hidden_layers", 2},
                      {"num_attention_heads", 4},
                      {"num_key_value_heads", 2},
                      {"head_dim", 4},
                      {"rms_norm_eps", 1e-5},
                      {"rope_theta", 10000.0},
                      {"max_position_embeddings", 64},
                      {"tie_word_embeddings", false},
                      {"bos_token_id", 1},
                      {"eos_token_id", 2},
                      {"torch_dtype", "float32"}};
  if (model_type == "mistral") j["sliding_window"] = nullptr;
  return j;
}

// Every tensor `cfg` implies, filled with PatternValues (salt = position in the list).
inline std::vector<TestTensor> TensorsForConfig(const ModelConfig& cfg,
                                                const std::string& dtype = "F32") {
  const int64_t h = cfg.hidden_size;
  const int64_t q = cfg.num_attention_heads * cfg.head_dim;
  const int64_t kv = cfg.num_key_value_heads * cfg.head_dim;
  const int64_t inter = cfg.intermediate_size;
  std::vector<std::pair<std::string, std::vector<int64_t>>> specs;
  specs.push_back({"model.embed_tokens.weight", {cfg.vocab_size, h}});
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    specs.push_back({p + "input_layernorm.weight", {h}});
    specs.push_back({p + "self_attn.q_proj.weight", {q, h}});
    specs.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    specs.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    if (cfg.attention_bias) {
      specs.push_back({p + "self_attn.q_proj.bias", {q}});
      specs.push_back({p + "self_attn.k_proj.bias", {kv}});
      specs.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    specs.push_back({p + "self_attn.o_proj.weight", {h, q}});
    specs.push_back({p + "post_attention_layernorm.weight", {h}});
    specs.push_back({p + "mlp.gate_proj.weight", {inter, h}});
    specs.push_back({p + "mlp.up_proj.weight", {inter, h}});
    specs.push_back({p + "mlp.down_proj.weight", {h, inter}});
  }
  specs.push_back({"model.norm.weight", {h}});
  if (!cfg.tie_word_embeddings) specs.push_back({"lm_head.weight", {cfg.vocab_size, h}});
  std::vector<TestTensor> tensors;
  for (size_t i = 0; i < specs.size(); ++i) {
    auto& [name, shape] = specs[i];
    tensors.push_back(MakeTensor(name, shape, PatternValues(NumElements(shape), i), dtype));
  }
  return tensors;
}

// Removes the tensor called `name` from `tensors`; fails the test when absent.
inline void RemoveTensor(std::vector<TestTensor>& tensors, std::string_view name) {
  const size_t before = tensors.size();
  std::erase_if(tensors, [&](const TestTensor& t) { return t.name == name; });
  EXPECT_EQ(tensors.size() + 1, before) << name;
}

inline TestTensor* FindTensor(std::vector<TestTensor>& tensors, std::string_view name) {
  for (TestTensor& t : tensors) {
    if (t.name == name) return &t;
  }
  ADD_FAILURE() << "no tensor " << name;
  return nullptr;
}

}  // namespace longview::test
