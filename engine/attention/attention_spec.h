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

using AttentionSpec = std::variant<DenseAttention, SlidingWindowAttention>;

// The attention fields as the APIs carry them, before parsing: a mode name and its parameters.
struct AttentionRequest {
  std::string mode;  // empty means dense
  std::optional<int64_t> window;
  std::optional<int64_t> sinks;
};

}  // namespace longview
