// What a request asks of attention: one value type, a variant with one alternative per mode,
// parsed and validated once from what the APIs carry (OpenAI `longview.attention`, gRPC
// AttentionConfig, `longview eval` flags) by the mode registry (attention_mode.h).
//
//   AttentionRequest raw{.mode = "sliding_window", .window = 4096, .sinks = 4};
//   std::string field;
//   absl::StatusOr<Attention> a = ParseAttention(raw, "longview.attention.", &field);
//   // on error: InvalidArgument starting with the field, e.g. "longview.attention.sinks ..."
//
// Adding a mode adds an alternative here, a mode file (attention_mode.h, "adding a mode" in
// docs/ARCHITECTURE.md) and a field in proto/longview.proto.
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "kernels/hip_stage.h"

namespace longview {

// The model's own attention, with its native sliding windows (Mistral, Gemma-style layers).
// `full` (tests and references only, not reachable from the APIs) ignores those windows: every
// layer reads every key.
struct DenseAttention {
  bool full = false;
  bool operator==(const DenseAttention&) const = default;
};

// DESIGN §4 sliding_window: every layer reads the last `window` tokens (the query included), and
// when sinks > 0 also the first `sinks` tokens, with positions re-assigned inside the cache
// (StreamingLLM): sinks at 0..sinks-1, the window's keys contiguous after them, the query last.
// Rules (checked when the mode is made): 1 <= window <= 2^31 - 1, 0 <= sinks <= window.
struct SlidingWindowAttention {
  int64_t window = 0;
  int64_t sinks = 0;
  bool operator==(const SlidingWindowAttention&) const = default;
};

// DESIGN §4 hip (InfiniteHiP; docs/hip.md): every query reads the first `sinks` tokens, the last
// `window` (the query included) and the key chunks its query block keeps through `stages` of
// hierarchical pruning over the tokens between them; the last stage keeps `top_k` tokens. The
// query keeps its own position; the sinks and kept chunks are packed at the positions just below
// the window. Prompt rows are pruned in blocks of `block_size` queries. Defaults: v1.2's.
// In decode, stage i's output is kept and recomputed every `refresh[i]` steps (the later stages
// from it in the same step); between refreshes the last mask is reused. The `dense_layers`
// keep `dense_top_k` tokens in the last stage instead of top_k.
// Rules (checked when the mode is made): sinks >= 0, window >= 1, block_size >= 1; 1 to 8
// stages, chunk sizes decreasing, each keep a multiple of its chunk, keeps decreasing, the last
// keep = top_k, pools in [1, 4096]; one refresh interval >= 1 per stage; dense layers distinct, >= 0; dense_top_k
// a multiple of the last chunk, no larger than the keep before the last stage.
struct HipAttention {
  int64_t sinks = 256;
  int64_t window = 1024;
  int64_t top_k = 2048;
  int64_t block_size = 64;
  std::vector<HipStage> stages = {{256, 32768, 4}, {32, 8192, 4}, {8, 2048, 1}};
  std::vector<int64_t> refresh = {32, 16, 8};
  std::vector<int64_t> dense_layers = {0, 1, 2, 3};
  int64_t dense_top_k = 4096;
  bool operator==(const HipAttention&) const = default;
};

using AttentionSpec = std::variant<DenseAttention, SlidingWindowAttention, HipAttention>;

// The attention fields as the APIs carry them, before parsing: a mode name and its parameters.
struct AttentionRequest {
  std::string mode;  // empty means dense
  std::optional<int64_t> window;
  std::optional<int64_t> sinks;
  std::optional<int64_t> top_k;
  std::optional<int64_t> block_size;
  std::optional<std::vector<HipStage>> stages;  // a pool of 0: v1.2's (4, 1 in the last stage)
  std::optional<std::vector<int64_t>> refresh;
  std::optional<std::vector<int64_t>> dense_layers;
  std::optional<int64_t> dense_top_k;
};

}  // namespace longview
