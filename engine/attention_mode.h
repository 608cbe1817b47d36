// An attention mode as a request names it (OpenAI `longview.attention`, gRPC AttentionConfig):
// validated into the ForwardOptions the engine runs, with errors naming the field.
//
//   AttentionModeRequest a{.mode = "sliding_window", .window = 4096, .sinks = 4};
//   std::string field;
//   absl::StatusOr<ForwardOptions> fo = ForwardOptionsForMode(a, "attention.", &field);
//   // on error: fo.status() is InvalidArgument, field is "attention.sinks" (for example)
//
// Modes served: `dense` (the model's own attention, including its native sliding windows) and
// `sliding_window` (DESIGN §4): the last `window` tokens, plus the first `sinks` tokens with
// positions re-assigned inside the cache (StreamingLLM) when sinks > 0.
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"
#include "engine/cpu_model.h"

namespace longview {

struct AttentionModeRequest {
  std::string mode = "dense";  // empty means dense
  std::optional<int64_t> window;
  std::optional<int64_t> sinks;
};

// InvalidArgument for an unknown or unsupported mode, a parameter the mode does not take, a
// missing or non-positive window, negative sinks or sinks > window. The message starts with the
// field (`prefix` + "mode" / "window" / "sinks"), which is also stored in *bad_field if given.
absl::StatusOr<ForwardOptions> ForwardOptionsForMode(const AttentionModeRequest& request,
                                                     const std::string& prefix,
                                                     std::string* bad_field = nullptr);

}  // namespace longview
