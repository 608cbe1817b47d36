// The transformers golden files of the parity tests (tools/golden/make_golden.py): per prompt
// the input ids, float32 logits at every position and a greedy continuation, read from a golden
// model folder's golden.safetensors and golden.json. Shared by the CPU engine's parity tests and
// the CUDA backend's GPU tests.
//
//   std::vector<GoldenPrompt> g = ReadGolden(data_dir + "/golden/llama");
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine/model/safetensors.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace longview {

struct GoldenPrompt {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<float> logits;  // [T, vocab]
  std::vector<int32_t> greedy;
};

// int64 token ids of a golden tensor as int32.
inline std::vector<int32_t> GoldenIds(const TensorView& t) {
  std::vector<int32_t> out(t.NumElements());
  for (int64_t i = 0; i < t.NumElements(); ++i) {
    int64_t v;
    std::memcpy(&v, t.data + i * sizeof(int64_t), sizeof(v));
    out[i] = static_cast<int32_t>(v);
  }
  return out;
}

// Fails the calling test (and returns nothing) when the files cannot be read.
inline std::vector<GoldenPrompt> ReadGolden(const std::string& dir) {
  auto st = SafetensorsArchive::OpenFile(dir + "/golden.safetensors");
  EXPECT_TRUE(st.ok()) << st.status();
  if (!st.ok()) return {};
  std::ifstream jf(dir + "/golden.json");
  nlohmann::json meta = nlohmann::json::parse(jf, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(meta.is_discarded()) << dir << "/golden.json";
  if (meta.is_discarded()) return {};
  std::vector<GoldenPrompt> out;
  for (size_t i = 0; i < meta["prompts"].size(); ++i) {
    GoldenPrompt g;
    g.text = meta["prompts"][i]["prompt"];
    const std::string p = "p" + std::to_string(i) + ".";
    g.ids = GoldenIds(*(*st)->Find(p + "input_ids"));
    g.greedy = GoldenIds(*(*st)->Find(p + "greedy"));
    const TensorView* lt = (*st)->Find(p + "logits");
    g.logits.resize(lt->NumElements());
    EXPECT_TRUE(lt->ToFloat32(g.logits.data()).ok());
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace longview
