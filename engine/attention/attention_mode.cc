#include "engine/attention/attention_mode.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace longview {

int64_t ReleasableWindow(const ModelConfig& cfg, const ForwardOptions& o) {
  if (o.window_override > 0) return o.window_override;
  if (o.window_override == 0 || cfg.layer_window.empty()) return 0;  // 0 = full attention
  int64_t widest = 0;
  for (int64_t w : cfg.layer_window) {
    if (w <= 0) return 0;
    widest = std::max(widest, w);
  }
  return widest;
}

int64_t QueryPosition(const ForwardOptions& o, int64_t token) {
  if (o.sinks <= 0) return token;
  const int64_t num_sinks = std::min(o.sinks, token + 1);
  return num_sinks + (token - std::max(num_sinks, token - o.window_override + 1));
}

absl::Status ValidateForwardOptions(const ForwardOptions& o) {
  if (o.sinks < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("sinks must be >= 0, got %d", o.sinks));
  }
  if (o.sinks > 0 && o.window_override < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "sinks (%d) need a window of at least 1 token, got window %d", o.sinks, o.window_override));
  }
  if (o.sinks > o.window_override && o.sinks > 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "sinks (%d) must not exceed window (%d)", o.sinks, o.window_override));
  }
  return absl::OkStatus();
}


absl::StatusOr<ForwardOptions> ForwardOptionsForMode(const AttentionModeRequest& a,
                                                     const std::string& prefix,
                                                     std::string* bad_field) {
  auto fail = [&](const std::string& field, const std::string& message) {
    if (bad_field != nullptr) *bad_field = prefix + field;
    return absl::InvalidArgumentError(absl::StrCat(prefix, field, " ", message));
  };
  const std::string mode = a.mode.empty() ? "dense" : a.mode;
  if (mode == "dense") {
    if (a.window.has_value()) return fail("window", "does not apply to mode dense");
    if (a.sinks.has_value()) return fail("sinks", "does not apply to mode dense");
    return ForwardOptions{};
  }
  if (mode != "sliding_window") {
    const bool later = mode == "hip" || mode == "lizard" || mode == "delta";
    return fail("mode", absl::StrCat("'", mode, "' is ", later ? "not supported yet" : "unknown",
                                     "; supported: dense, sliding_window"));
  }
  if (!a.window.has_value()) return fail("window", "is required for mode sliding_window");
  if (*a.window < 1) return fail("window", absl::StrCat("must be at least 1, got ", *a.window));
  const int64_t sinks = a.sinks.value_or(0);
  if (sinks < 0) return fail("sinks", absl::StrCat("must be >= 0, got ", sinks));
  if (sinks > *a.window) {
    return fail("sinks", absl::StrCat("(", sinks, ") must not exceed ", prefix, "window (",
                                      *a.window, ")"));
  }
  return ForwardOptions{.window_override = *a.window, .sinks = sinks};
}

}  // namespace longview
