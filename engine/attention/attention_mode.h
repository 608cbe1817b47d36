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
#include "engine/model/model_config.h"

namespace longview {

struct ForwardOptions {
  // Overrides every layer's window when >= 0 (0 = full attention); -1 keeps the model's.
  int64_t window_override = -1;
  // StreamingLLM attention sinks (DESIGN §4 sliding_window): when > 0, every layer attends to the
  // first `sinks` tokens plus the last `window_override` tokens (the query included), with
  // positions re-assigned inside the cache: sinks at 0..sinks-1, the window's keys contiguous
  // from `sinks` on, the query last. Keys outside that selection are never read, so their pages
  // may be released (block table entry -1). 0 = plain windows by token position.
  // REQUIRES (checked, InvalidArgument): sinks >= 0; sinks > 0 needs 1 <= sinks <= window_override.
  int64_t sinks = 0;
};

// InvalidArgument naming the field when `options` break the rules above.
absl::Status ValidateForwardOptions(const ForwardOptions& options);

// The RoPE position of the query at token index `token`: the index itself, or under StreamingLLM
// (sinks > 0) its re-assigned position after the sinks and the rest of the window.
int64_t QueryPosition(const ForwardOptions& options, int64_t token);

// The window under which a sequence's pages that left it may be released (DESIGN §4
// sliding_window): the request's window when it overrides the model's (> 0), else the model's own
// when every layer is windowed (Mistral; the largest layer window), else 0 (some layer reads
// everything: Gemma-style interleaving, or no windows at all). Pages released under it never get
// read again: every layer's keys lie inside this window.
int64_t ReleasableWindow(const ModelConfig& cfg, const ForwardOptions& options);


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
