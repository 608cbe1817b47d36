// The small random Llama checkpoint of tests/data/golden/llama as a LoadedModel (loaded once per
// test binary), and random prompts over its vocabulary, for engine-loop tests.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"

namespace longview::test {

inline std::shared_ptr<const LoadedModel> GoldenLlama() {
  static std::shared_ptr<const LoadedModel> lm = [] {
    auto r = LoadedModel::Load(std::string(LONGVIEW_TEST_DATA_DIR) + "/golden/llama");
    EXPECT_TRUE(r.ok()) << r.status();
    return std::shared_ptr<const LoadedModel>(std::move(*r));
  }();
  return lm;
}

// BOS, then len - 1 tokens drawn from [3, 503) with `seed`.
inline std::vector<int32_t> RandomPrompt(int len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p{1};  // BOS
  for (int i = 1; i < len; ++i) p.push_back(3 + static_cast<int32_t>(rng() % 500));
  return p;
}

}  // namespace longview::test
