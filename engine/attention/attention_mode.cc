#include "engine/attention/attention_mode.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/attention/internal/modes.h"

namespace longview {

using attention_internal::FieldError;

absl::Status AttentionMode::CheckLength(int64_t num_prompt, int64_t max_tokens,
                                        int64_t context) const {
  const int64_t limit = MaxSequenceLength(context);
  // Written so that no sum overflows: max_tokens may be anything up to INT64_MAX.
  if (num_prompt <= limit && max_tokens <= limit - num_prompt) return absl::OkStatus();
  return LengthError(num_prompt, max_tokens, context);
}

absl::Status AttentionMode::LengthError(int64_t num_prompt, int64_t max_tokens,
                                        int64_t context) const {
  return absl::InvalidArgumentError(absl::StrFormat(
      "prompt_tokens (%d) + max_tokens (%d) exceeds the model's context of %d tokens",
      num_prompt, max_tokens, context));
}

int64_t AttentionMode::LayerWindow(int64_t model_window) const {
  const int64_t w = Footprint().window;
  return w >= 0 ? w : model_window;
}

int64_t AttentionMode::ReleasableWindow(int64_t model_window) const {
  const int64_t w = Footprint().window;
  return w > 0 ? w : w < 0 ? model_window : 0;
}

int64_t AttentionMode::ReleasableWindow(const ModelConfig& cfg) const {
  return ReleasableWindow(ModelReleasableWindow(cfg));
}

int64_t AttentionMode::PagesHeld(int64_t num_tokens, int64_t page_size, int64_t chunk,
                                 int64_t model_window) const {
  auto pages = [page_size](int64_t tokens) { return tokens / page_size + (tokens % page_size != 0); };
  const int64_t all = pages(num_tokens);
  const int64_t w = ReleasableWindow(model_window);
  if (w <= 0) return all;
  return std::min(all, pages(Footprint().sinks) + pages(w + chunk) + 1);
}

uint64_t AttentionMode::PrefixCacheSalt() const {
  const KvFootprint f = Footprint();
  if (f.window < 0 && f.sinks == 0) return 0;
  return (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(f.window + 1)) ^
         (0xC2B2AE3D27D4EB4Full * static_cast<uint64_t>(f.sinks));
}

int64_t ModelReleasableWindow(const ModelConfig& cfg) {
  if (cfg.layer_window.empty()) return 0;
  int64_t widest = 0;
  for (int64_t w : cfg.layer_window) {
    if (w <= 0) return 0;
    widest = std::max(widest, w);
  }
  return widest;
}

Attention::Attention() {
  static const std::shared_ptr<const AttentionMode> dense =
      *attention_internal::MakeMode(DenseAttention{}, "");
  mode_ = dense;
}

absl::StatusOr<Attention> Attention::Of(const AttentionSpec& spec, const std::string& prefix) {
  if (spec == AttentionSpec{DenseAttention{}}) return Attention();
  absl::StatusOr<std::shared_ptr<const AttentionMode>> mode = std::visit(
      [&](const auto& s) { return attention_internal::MakeMode(s, prefix); }, spec);
  if (!mode.ok()) return mode.status();
  return Attention(*std::move(mode));
}

absl::Status attention_internal::RejectHipParameters(const AttentionRequest& r,
                                                     const std::string& prefix,
                                                     std::string_view mode) {
  const char* field = r.top_k          ? "top_k"
                      : r.block_size   ? "block_size"
                      : r.stages       ? "stages"
                      : r.refresh      ? "refresh"
                      : r.dense_layers ? "dense_layers"
                      : r.dense_top_k  ? "dense_top_k"
                                       : nullptr;
  if (field == nullptr) return absl::OkStatus();
  return FieldError(prefix, field, "does not apply to mode " + std::string(mode));
}

std::span<const AttentionModeEntry> AttentionModes() {
  static const AttentionModeEntry kModes[] = {
      {"dense", attention_internal::ParseDense},
      {"sliding_window", attention_internal::ParseSlidingWindow},
      {"hip", attention_internal::ParseHip},
  };
  return kModes;
}

absl::StatusOr<Attention> ParseAttention(const AttentionRequest& request, const std::string& prefix,
                                         std::string* bad_field) {
  auto fail = [&](absl::Status st) {
    if (bad_field != nullptr) {
      const std::string m(st.message());
      *bad_field = m.substr(0, m.find(' '));
    }
    return st;
  };
  const std::string name = request.mode.empty() ? "dense" : request.mode;
  std::span<const AttentionModeEntry> modes = AttentionModes();
  auto it = std::find_if(modes.begin(), modes.end(),
                         [&](const AttentionModeEntry& e) { return e.name == name; });
  if (it == modes.end()) {
    const bool later = name == "lizard" || name == "delta";
    std::vector<std::string> names;
    for (const AttentionModeEntry& e : modes) names.emplace_back(e.name);
    return fail(FieldError(prefix, "mode",
                           absl::StrCat("'", name, "' is ", later ? "not supported yet" : "unknown",
                                        "; supported: ", absl::StrJoin(names, ", "))));
  }
  absl::StatusOr<AttentionSpec> spec = it->parse(request, prefix);
  if (!spec.ok()) return fail(spec.status());
  absl::StatusOr<Attention> attention = Attention::Of(*spec, prefix);
  if (!attention.ok()) return fail(attention.status());
  return attention;
}

}  // namespace longview
