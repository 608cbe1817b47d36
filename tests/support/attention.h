// Attention modes for tests: sliding windows and full attention, valid by construction (a test
// that passes invalid values gets them reported as a failure, not a crash).
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <utility>
#include <vector>

#include "engine/attention/attention_mode.h"
#include "gtest/gtest.h"

namespace longview {

inline Attention TestAttention(const AttentionSpec& spec) {
  absl::StatusOr<Attention> a = Attention::Of(spec);
  EXPECT_TRUE(a.ok()) << a.status();
  return a.ok() ? *a : Attention();
}

// DESIGN §4 sliding_window: the last `window` tokens, plus `sinks` StreamingLLM sinks.
inline Attention SlidingWindow(int64_t window, int64_t sinks = 0) {
  return TestAttention(SlidingWindowAttention{.window = window, .sinks = sinks});
}

// Every layer reads every key (the model's own windows ignored): the reference for windows.
inline Attention FullAttention() { return TestAttention(DenseAttention{.full = true}); }

// DESIGN §4 hip with small stages for short test sequences: chunks of 16 keeping 64 tokens,
// then chunks of 4 keeping top_k; masks refreshed every decode step unless `refresh` says
// otherwise; no dense layers unless named (keeping twice top_k, at most 64).
inline Attention SmallHip(int64_t sinks, int64_t window, int64_t top_k, int64_t block_size = 8,
                          std::vector<int64_t> refresh = {1, 1},
                          std::vector<int64_t> dense_layers = {}) {
  return TestAttention(HipAttention{.sinks = sinks,
                                    .window = window,
                                    .top_k = top_k,
                                    .block_size = block_size,
                                    .stages = {{16, 64}, {4, top_k}},
                                    .refresh = std::move(refresh),
                                    .dense_layers = std::move(dense_layers),
                                    .dense_top_k = std::min<int64_t>(2 * top_k, 64)});
}

}  // namespace longview
