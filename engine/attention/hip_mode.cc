// HiP hierarchical pruning (DESIGN §4 hip, docs/hip.md): the mode's rules and the host side of
// a step; the pruning itself is kernels/cpu/hip_mask.h, run by the backend per query block.
#include <algorithm>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/attention/hip.h"
#include "engine/attention/internal/modes.h"

namespace longview {

cpu::HipRange HipMiddle(const HipAttention& h, int64_t first_token) {
  const int64_t masking_window = std::max<int64_t>(1, h.window - h.stages.front().chunk);
  return {h.sinks, std::max(h.sinks, first_token + 1 - masking_window)};
}

int64_t HipWindowBegin(const HipAttention& h, int64_t first_token) {
  return std::max(h.sinks, first_token + 1 - h.window);
}

std::vector<HipStage> HipLayerStages(const HipAttention& h, int64_t layer) {
  std::vector<HipStage> stages = h.stages;
  if (HipDenseLayer(h, layer)) stages.back().keep = h.dense_top_k;
  return stages;
}

bool HipPrunes(const HipAttention& h, int64_t first_token, int64_t layer) {
  const cpu::HipRange m = HipMiddle(h, first_token);
  return m.end - m.begin > HipLayerStages(h, layer).back().keep;
}

bool HipDenseLayer(const HipAttention& h, int64_t layer) {
  return std::find(h.dense_layers.begin(), h.dense_layers.end(), layer) != h.dense_layers.end();
}

cpu::HipMaskParams HipMaskParamsFor(const HipAttention& h, int64_t layer, int64_t num_q_heads,
                                    int64_t num_kv_heads, int64_t head_dim, int64_t context) {
  const int64_t chunk0 = h.stages.front().chunk;
  const int64_t scan_window = std::max<int64_t>(1, h.window - chunk0);
  return {.num_q_heads = num_q_heads,
          .num_kv_heads = num_kv_heads,
          .head_dim = head_dim,
          .share_heads = true,
          .query_position = scan_window + 1,
          .chunk_indexed = HipDenseLayer(h, layer),
          .scan_window = scan_window,
          .first_stage_chunks =
              std::max<int64_t>(1, (context - h.sinks - h.window + chunk0 - 1) / chunk0)};
}

KvSelection HipRowSelection(const HipAttention& h, std::span<const int32_t> block_table,
                            int64_t page_size, int64_t first_token, int64_t token,
                            const cpu::HipHeadRanges& kept) {
  const int64_t window_begin = HipWindowBegin(h, first_token);
  auto one_head = [&](const std::vector<cpu::HipRange>& ranges, KvSelection& sel) {
    // Kept tokens inside the window are read there.
    std::vector<cpu::HipRange> below;
    int64_t kept_tokens = 0;
    for (const cpu::HipRange& r : ranges) {
      const cpu::HipRange c{r.begin, std::min(r.end, window_begin)};
      if (c.end <= c.begin) continue;
      below.push_back(c);
      kept_tokens += c.end - c.begin;
    }
    const int64_t sinks = std::min(h.sinks, window_begin);
    int64_t pos = std::max<int64_t>(0, window_begin - kept_tokens - sinks);
    AppendTokenRange(block_table, page_size, 0, sinks, pos, sel);
    pos += sinks;
    for (const cpu::HipRange& r : below) {
      AppendTokenRange(block_table, page_size, r.begin, r.end - r.begin, pos, sel);
      pos += r.end - r.begin;
    }
    AppendTokenRange(block_table, page_size, window_begin, token + 1 - window_begin, window_begin,
                     sel);
  };
  KvSelection sel;
  const bool shared = std::all_of(kept.begin(), kept.end(), [&](const auto& r) { return r == kept[0]; });
  if (shared) {
    one_head(kept[0], sel);
    return sel;
  }
  sel.head_begin.push_back(0);
  for (const auto& ranges : kept) {
    one_head(ranges, sel);
    sel.head_begin.push_back(static_cast<int32_t>(sel.spans.size()));
  }
  return sel;
}

size_t HipRefreshStage(const HipAttention& h, const HipLayerMasks& masks) {
  if (masks.outputs.size() != h.stages.size()) return 0;
  for (size_t i = 0; i < h.stages.size(); ++i) {
    if (masks.age[i] >= h.refresh[i]) return i;
  }
  return h.stages.size();
}

const cpu::HipHeadRanges& HipDecodeMask(const HipAttention& h, int64_t layer,
                                        cpu::HipMaskParams params, const cpu::PagedKvView& kv,
                                        const cpu::RopeTable& rope, const float* q,
                                        int64_t token, HipLayerMasks& masks) {
  params.first_query_position = token;
  const size_t first = HipRefreshStage(h, masks);
  const std::vector<HipStage> stages = HipLayerStages(h, layer);
  if (first == 0) {
    masks.outputs.assign(stages.size(), {});
    masks.age.assign(stages.size(), 0);
  }
  if (first < stages.size()) {
    cpu::HipHeadRanges ranges;
    if (first == 0) {
      const cpu::HipRange middle = HipMiddle(h, token);
      ranges.assign(params.num_kv_heads, {middle});
    } else {
      ranges = masks.outputs[first - 1];
    }
    for (size_t i = first; i < stages.size(); ++i) {
      ranges = cpu::HipRefineStage(params, kv, rope, q, 1, stages[i], ranges,
                                   cpu::HipScanChunks(params, stages, i));
      masks.outputs[i] = ranges;
      masks.age[i] = 0;
    }
  }
  for (int64_t& a : masks.age) ++a;
  return masks.outputs.back();
}

absl::StatusOr<std::vector<HipStage>> ParseHipStages(std::string_view text) {
  std::vector<HipStage> stages;
  for (absl::string_view entry : absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
    const std::vector<absl::string_view> parts = absl::StrSplit(entry, ':');
    HipStage s{.pool = 0};  // not given: the mode's default
    if ((parts.size() != 2 && parts.size() != 3) || !absl::SimpleAtoi(parts[0], &s.chunk) ||
        !absl::SimpleAtoi(parts[1], &s.keep) ||
        (parts.size() == 3 && !absl::SimpleAtoi(parts[2], &s.pool))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stage '", entry, "' is not chunk:keep or chunk:keep:pool (integers, e.g. 256:32768:4)"));
    }
    stages.push_back(s);
  }
  return stages;
}

absl::StatusOr<std::vector<int64_t>> ParseIntList(std::string_view text) {
  std::vector<int64_t> values;
  if (text.empty()) return values;
  for (absl::string_view entry : absl::StrSplit(absl::string_view(text.data(), text.size()), ',')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(entry, &v)) {
      return absl::InvalidArgumentError(absl::StrCat("'", entry, "' is not an integer"));
    }
    values.push_back(v);
  }
  return values;
}

namespace attention_internal {
namespace {

constexpr int64_t kMaxTokens = std::numeric_limits<int32_t>::max();
constexpr size_t kMaxStages = 8;

class HipMode final : public AttentionMode {
 public:
  explicit HipMode(const HipAttention& spec) : spec_(spec), hip_(spec) {}

  std::string_view name() const override { return "hip"; }
  const AttentionSpec& spec() const override { return spec_; }
  std::vector<std::pair<std::string, int64_t>> Params() const override {
    std::vector<std::pair<std::string, int64_t>> p = {{"sinks", hip_.sinks},
                                                      {"window", hip_.window},
                                                      {"top_k", hip_.top_k},
                                                      {"block_size", hip_.block_size}};
    for (size_t i = 0; i < hip_.stages.size(); ++i) {
      p.emplace_back(absl::StrFormat("stage%d_chunk", i + 1), hip_.stages[i].chunk);
      p.emplace_back(absl::StrFormat("stage%d_keep", i + 1), hip_.stages[i].keep);
      p.emplace_back(absl::StrFormat("stage%d_pool", i + 1), hip_.stages[i].pool);
      p.emplace_back(absl::StrFormat("stage%d_refresh", i + 1), hip_.refresh[i]);
    }
    p.emplace_back("dense_top_k", hip_.dense_top_k);
    p.emplace_back("dense_layers", static_cast<int64_t>(hip_.dense_layers.size()));
    return p;
  }
  // Any key may be selected: every page stays (host offload comes with the tiers).
  KvFootprint Footprint() const override {
    return {.sinks = hip_.sinks, .window = 0, .exit = PageExit::kKept};
  }
  // The query keeps its position (as v1.2 does): the model's context bounds the sequence.
  int64_t MaxSequenceLength(int64_t context) const override { return context; }
  bool PerRowSelection() const override { return true; }
  int64_t QueryPosition(int64_t token) const override { return token; }
  // Before the middle outgrows top_k every key is read: the dense selection.
  KvSelection SelectKv(std::span<const int32_t> block_table, int64_t page_size, int64_t token,
                       int64_t, int64_t* query_position) const override {
    *query_position = token;
    return DenseSelection(block_table, page_size, token + 1);
  }
  const HipAttention* hip() const override { return &hip_; }
  uint64_t PrefixCacheSalt() const override {
    uint64_t h = 0x48695020u;  // K/V of later layers differ from dense's once pruning starts
    auto mix = [&h](int64_t v) { h = (h ^ static_cast<uint64_t>(v)) * 0x100000001B3ull; };
    mix(hip_.sinks), mix(hip_.window), mix(hip_.top_k), mix(hip_.block_size);
    for (const HipStage& s : hip_.stages) mix(s.chunk), mix(s.keep), mix(s.pool);
    for (int64_t r : hip_.refresh) mix(r);
    mix(hip_.dense_top_k);
    for (int64_t l : hip_.dense_layers) mix(l + 1);
    return h;
  }

 private:
  AttentionSpec spec_;
  HipAttention hip_;
};

}  // namespace

absl::StatusOr<AttentionSpec> ParseHip(const AttentionRequest& r, const std::string& prefix) {
  HipAttention h;
  if (r.sinks.has_value()) h.sinks = *r.sinks;
  if (r.window.has_value()) h.window = *r.window;
  if (r.block_size.has_value()) h.block_size = *r.block_size;
  if (r.stages.has_value()) {
    if (r.stages->empty()) return FieldError(prefix, "stages", "must name at least one stage");
    h.stages = *r.stages;
  }
  if (r.top_k.has_value()) {
    if (r.stages.has_value() && *r.top_k != h.stages.back().keep) {
      return FieldError(prefix, "top_k",
                        absl::StrFormat("(%d) must equal the last stage's keep (%d)", *r.top_k,
                                        h.stages.back().keep));
    }
    h.top_k = *r.top_k;
    if (!r.stages.has_value()) {
      // Only the last stage's keep changes: say what is wrong with it as top_k.
      const int64_t chunk = h.stages.back().chunk, before = h.stages[h.stages.size() - 2].keep;
      if (h.top_k < chunk || h.top_k > before || h.top_k % chunk != 0) {
        return FieldError(prefix, "top_k",
                          absl::StrFormat("must be a multiple of %d in [%d, %d] (the last "
                                          "stage's chunk and the keep before it), got %d",
                                          chunk, chunk, before, h.top_k));
      }
    }
    h.stages.back().keep = h.top_k;
  } else {
    h.top_k = h.stages.back().keep;
  }
  // Other stage lists take v1.2's schedule and its doubled top-k on the dense layers, and
  // stages without a pool v1.2's: queries in fours but in the last stage.
  const size_t n = h.stages.size();
  for (size_t i = 0; i < n; ++i) {
    if (h.stages[i].pool == 0) h.stages[i].pool = i + 1 < n ? 4 : 1;
  }
  if (r.refresh.has_value()) {
    h.refresh = *r.refresh;
  } else if (r.stages.has_value()) {
    h.refresh.clear();
    for (size_t i = 0; i < n; ++i) h.refresh.push_back(int64_t{8} << std::min<size_t>(n - 1 - i, 20));
  }
  if (r.dense_layers.has_value()) h.dense_layers = *r.dense_layers;
  if (r.dense_top_k.has_value()) {
    h.dense_top_k = *r.dense_top_k;
  } else {
    h.dense_top_k = n > 1 ? std::min(2 * h.top_k, h.stages[n - 2].keep) : 2 * h.top_k;
  }
  return h;
}

absl::StatusOr<std::shared_ptr<const AttentionMode>> MakeMode(const HipAttention& h,
                                                              const std::string& prefix) {
  auto range = [&](const char* field, int64_t v, int64_t lo, int64_t hi) -> absl::Status {
    if (v < lo || v > hi) {
      return FieldError(prefix, field, absl::StrFormat("must be in [%d, %d], got %d", lo, hi, v));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(range("sinks", h.sinks, 0, kMaxTokens));
  RETURN_IF_ERROR(range("window", h.window, 1, kMaxTokens));
  RETURN_IF_ERROR(range("block_size", h.block_size, 1, 4096));
  if (h.stages.empty() || h.stages.size() > kMaxStages) {
    return FieldError(prefix, "stages",
                      absl::StrFormat("must name 1 to %d stages, got %d", kMaxStages,
                                      h.stages.size()));
  }
  for (size_t i = 0; i < h.stages.size(); ++i) {
    const HipStage& s = h.stages[i];
    const std::string field = absl::StrFormat("stages[%d]", i);
    RETURN_IF_ERROR(range((field + ".chunk").c_str(), s.chunk, 1, 1 << 20));
    RETURN_IF_ERROR(range((field + ".keep").c_str(), s.keep, s.chunk, kMaxTokens));
    RETURN_IF_ERROR(range((field + ".pool").c_str(), s.pool, 1, 4096));
    if (s.keep % s.chunk != 0) {
      return FieldError(prefix, field + ".keep",
                        absl::StrFormat("(%d) must be a multiple of its chunk (%d)", s.keep,
                                        s.chunk));
    }
    if (i > 0 && (s.chunk >= h.stages[i - 1].chunk || s.keep > h.stages[i - 1].keep)) {
      return FieldError(prefix, field,
                        absl::StrFormat("(chunk %d, keep %d) must have a smaller chunk and no "
                                        "larger keep than the stage before (chunk %d, keep %d)",
                                        s.chunk, s.keep, h.stages[i - 1].chunk,
                                        h.stages[i - 1].keep));
    }
  }
  if (h.refresh.size() != h.stages.size()) {
    return FieldError(prefix, "refresh",
                      absl::StrFormat("must give one interval per stage (%d), got %d",
                                      h.stages.size(), h.refresh.size()));
  }
  for (size_t i = 0; i < h.refresh.size(); ++i) {
    RETURN_IF_ERROR(range(absl::StrFormat("refresh[%d]", i).c_str(), h.refresh[i], 1, 1 << 20));
  }
  for (size_t i = 0; i < h.dense_layers.size(); ++i) {
    const std::string field = absl::StrFormat("dense_layers[%d]", i);
    RETURN_IF_ERROR(range(field.c_str(), h.dense_layers[i], 0, 1 << 16));
    if (std::find(h.dense_layers.begin(), h.dense_layers.begin() + i, h.dense_layers[i]) !=
        h.dense_layers.begin() + i) {
      return FieldError(prefix, field,
                        absl::StrFormat("(%d) names a layer twice", h.dense_layers[i]));
    }
  }
  {
    const int64_t chunk = h.stages.back().chunk;
    const int64_t before = h.stages.size() > 1 ? h.stages[h.stages.size() - 2].keep : kMaxTokens;
    if (h.dense_top_k < chunk || h.dense_top_k > before || h.dense_top_k % chunk != 0) {
      return FieldError(prefix, "dense_top_k",
                        absl::StrFormat("must be a multiple of %d in [%d, %d] (the last stage's "
                                        "chunk and the keep before it), got %d",
                                        chunk, chunk, before, h.dense_top_k));
    }
  }
  if (h.top_k != h.stages.back().keep) {
    return FieldError(prefix, "top_k",
                      absl::StrFormat("(%d) must equal the last stage's keep (%d)", h.top_k,
                                      h.stages.back().keep));
  }
  return std::make_shared<HipMode>(h);
}

}  // namespace attention_internal
}  // namespace longview
