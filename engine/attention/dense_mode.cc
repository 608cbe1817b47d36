// Dense attention: the model's own, native windows included (or, `full`, every key).
#include <limits>

#include "engine/attention/internal/modes.h"

namespace longview::attention_internal {
namespace {

class DenseMode final : public AttentionMode {
 public:
  explicit DenseMode(const DenseAttention& spec) : spec_(spec) {}

  std::string_view name() const override { return "dense"; }
  const AttentionSpec& spec() const override { return spec_; }
  std::vector<std::pair<std::string, int64_t>> Params() const override { return {}; }
  KvFootprint Footprint() const override {
    // The model's windows let pages go (Mistral); `full` reads every key.
    return {.window = std::get<DenseAttention>(spec_).full ? 0 : -1, .exit = PageExit::kFreed};
  }
  int64_t MaxSequenceLength(int64_t context) const override { return context; }
  bool PerRowSelection() const override { return false; }
  int64_t QueryPosition(int64_t token) const override { return token; }
  KvSelection SelectKv(std::span<const int32_t> block_table, int64_t page_size, int64_t token,
                       int64_t model_window, int64_t* query_position) const override {
    *query_position = token;
    return WindowSelection(block_table, page_size, token, LayerWindow(model_window));
  }

 private:
  AttentionSpec spec_;
};

}  // namespace

absl::StatusOr<AttentionSpec> ParseDense(const AttentionRequest& r, const std::string& prefix) {
  RETURN_IF_ERROR(RejectHipParameters(r, prefix, "dense"));
  if (r.window.has_value()) return FieldError(prefix, "window", "does not apply to mode dense");
  if (r.sinks.has_value()) return FieldError(prefix, "sinks", "does not apply to mode dense");
  return DenseAttention{};
}

absl::StatusOr<std::shared_ptr<const AttentionMode>> MakeMode(const DenseAttention& spec,
                                                              const std::string&) {
  return std::make_shared<DenseMode>(spec);
}

}  // namespace longview::attention_internal
