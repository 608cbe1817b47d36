// Sliding window attention with StreamingLLM sinks (DESIGN §4 sliding_window).
#include <algorithm>
#include <limits>

#include "absl/strings/str_format.h"
#include "engine/attention/internal/modes.h"

namespace longview::attention_internal {
namespace {

constexpr int64_t kMaxWindow = std::numeric_limits<int32_t>::max();

class SlidingWindowMode final : public AttentionMode {
 public:
  explicit SlidingWindowMode(const SlidingWindowAttention& spec)
      : spec_(spec), window_(spec.window), sinks_(spec.sinks) {}

  std::string_view name() const override { return "sliding_window"; }
  const AttentionSpec& spec() const override { return spec_; }
  std::vector<std::pair<std::string, int64_t>> Params() const override {
    return {{"window", window_}, {"sinks", sinks_}};
  }
  KvFootprint Footprint() const override {
    return {.sinks = sinks_, .window = window_, .exit = PageExit::kFreed};
  }
  // With sinks, positions are re-assigned below sinks + window: any length, if that fits.
  int64_t MaxSequenceLength(int64_t context) const override {
    return sinks_ > 0 && sinks_ <= context - window_ ? std::numeric_limits<int64_t>::max()
                                                     : context;
  }
  bool PerRowSelection() const override { return sinks_ > 0; }
  int64_t QueryPosition(int64_t token) const override {
    if (sinks_ == 0) return token;
    const int64_t num_sinks = std::min(sinks_, token + 1);
    return num_sinks + (token - std::max(num_sinks, token - window_ + 1));
  }
  KvSelection SelectKv(std::span<const int32_t> block_table, int64_t page_size, int64_t token,
                       int64_t, int64_t* query_position) const override {
    // Without sinks, the window at its own positions; with them, tokens [0, sinks) at positions
    // 0..sinks-1, then the window's tokens at contiguous positions after them.
    if (sinks_ == 0) {
      *query_position = token;
      return WindowSelection(block_table, page_size, token, window_);
    }
    return SinkWindowSelection(block_table, page_size, token, sinks_, window_, query_position);
  }

 protected:
  absl::Status LengthError(int64_t num_prompt, int64_t max_tokens,
                           int64_t context) const override {
    if (sinks_ == 0) return AttentionMode::LengthError(num_prompt, max_tokens, context);
    return absl::InvalidArgumentError(absl::StrFormat(
        "attention.sinks (%d) + attention.window (%d) exceeds the model's context of %d tokens",
        sinks_, window_, context));
  }

 private:
  AttentionSpec spec_;
  int64_t window_, sinks_;
};

}  // namespace

absl::StatusOr<AttentionSpec> ParseSlidingWindow(const AttentionRequest& r,
                                                 const std::string& prefix) {
  RETURN_IF_ERROR(RejectHipParameters(r, prefix, "sliding_window"));
  if (!r.window.has_value()) {
    return FieldError(prefix, "window", "is required for mode sliding_window");
  }
  return SlidingWindowAttention{.window = *r.window, .sinks = r.sinks.value_or(0)};
}

absl::StatusOr<std::shared_ptr<const AttentionMode>> MakeMode(const SlidingWindowAttention& s,
                                                              const std::string& prefix) {
  if (s.window < 1) {
    return FieldError(prefix, "window", absl::StrFormat("must be at least 1, got %d", s.window));
  }
  // Kernels take 32-bit windows; nothing longer is meaningful, and sums stay far from overflow.
  if (s.window > kMaxWindow) {
    return FieldError(prefix, "window",
                      absl::StrFormat("must be at most %d, got %d", kMaxWindow, s.window));
  }
  if (s.sinks < 0) return FieldError(prefix, "sinks", absl::StrFormat("must be >= 0, got %d", s.sinks));
  if (s.sinks > s.window) {
    return FieldError(prefix, "sinks", absl::StrFormat("(%d) must not exceed %swindow (%d)",
                                                       s.sinks, prefix, s.window));
  }
  return std::make_shared<SlidingWindowMode>(s);
}

}  // namespace longview::attention_internal
