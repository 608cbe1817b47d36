#include "engine/attention_mode.h"

#include "absl/strings/str_cat.h"

namespace longview {

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
