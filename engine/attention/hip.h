// The host side of attention mode `hip` (DESIGN §4, docs/hip.md) for the backends: which middle
// a query block prunes, the pruning's parameters, and the selection a row reads once the block's
// chunks are chosen (kernels/cpu/hip_mask.h chooses them).
//
//   if (const HipAttention* h = attention->hip(); h != nullptr && HipPrunes(*h, first_token, l)) {
//     cpu::HipMaskParams params = HipMaskParamsFor(*h, l, nq, nkv, hd, context);
//     params.first_query_position = first_token;
//     cpu::HipHeadRanges kept = cpu::HipSelect(params, view, rope,
//                                              q_before_rope, rows, HipLayerStages(*h, l),
//                                              HipMiddle(*h, first_token));
//     KvSelection sel = HipRowSelection(*h, blocks, page_size, first_token, token, kept);
//   }
//   // A decode row with the sequence's masks (reused between refreshes):
//   const cpu::HipHeadRanges& kept = HipDecodeMask(*h, l, params, view, rope, q, token, masks);
// Thread-safety: pure functions; HipDecodeMask writes only the masks it is given.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/attention/attention_spec.h"
#include "kernels/cpu/hip_mask.h"
#include "kernels/kv_selection.h"

namespace longview {

// The tokens a query block whose first row is token `first_token` prunes: after the sinks, up to
// v1.2's masking window (the window less the first stage's chunk) before its first row. The
// kept chunks that fall inside the block's window are read as window (HipRowSelection), and
// become kept tokens once a reused mask's window has moved past them.
cpu::HipRange HipMiddle(const HipAttention& h, int64_t first_token);
// The first token of the block's window: `window` - 1 tokens before its first row.
int64_t HipWindowBegin(const HipAttention& h, int64_t first_token);
// The stages of layer `layer`: the last one keeps dense_top_k on the dense layers.
std::vector<HipStage> HipLayerStages(const HipAttention& h, int64_t layer);
// True when the block's middle holds more tokens than the layer's last stage keeps; otherwise
// its rows read every key.
bool HipPrunes(const HipAttention& h, int64_t first_token, int64_t layer);
bool HipDenseLayer(const HipAttention& h, int64_t layer);
// v1.2's pruning of layer `layer` of a model with `context` positions: ranked over every query
// head; relative RoPE with the queries at window - first chunk + 1, or on the dense layers
// chunk-indexed RoPE (first_query_position is the caller's to set per block).
cpu::HipMaskParams HipMaskParamsFor(const HipAttention& h, int64_t layer, int64_t num_q_heads,
                                    int64_t num_kv_heads, int64_t head_dim, int64_t context);
// What the row at token `token` of the block starting at `first_token` reads: the sinks, the
// kept ranges of each KV head below the block's window, and the window up to the row. The
// window's keys keep their positions; the kept tokens, then the sinks, are packed just below it.
// One span list when every head kept the same ranges, else one per KV head.
// REQUIRES: first_token <= token; kept has one list per KV head, inside the middle.
KvSelection HipRowSelection(const HipAttention& h, std::span<const int32_t> block_table,
                            int64_t page_size, int64_t first_token, int64_t token,
                            const cpu::HipHeadRanges& kept);

// A decoding sequence's masks (refresh): per layer, each stage's output when it was last
// computed and the decode steps since. Kept by the backend per sequence (dropped when the
// sequence finishes or restarts, copied to a fork).
struct HipLayerMasks {
  std::vector<cpu::HipHeadRanges> outputs;  // per stage; empty until the layer first prunes
  std::vector<int64_t> age;                 // per stage: decode steps since it was computed
};
struct HipSequenceMasks {
  std::vector<HipLayerMasks> layers;
};

// The first stage a decode step of a layer recomputes: 0 when nothing is cached, else the first
// stage whose output is `refresh` steps old; stages.size() when the last mask is reused.
size_t HipRefreshStage(const HipAttention& h, const HipLayerMasks& masks);
// The kept chunks of a decode row at token `token` (one query, before RoPE) for layer `layer`:
// the stages from HipRefreshStage on, the first of them from the cached output of the stage
// before it (the middle for stage 0), the later ones from it; then every stage ages by a step.
// `params` as HipMaskParamsFor gives them (the query's position is set here).
// REQUIRES: HipPrunes(h, token, layer).
const cpu::HipHeadRanges& HipDecodeMask(const HipAttention& h, int64_t layer,
                                        cpu::HipMaskParams params, const cpu::PagedKvView& kv,
                                        const cpu::RopeTable& rope, const float* q,
                                        int64_t token, HipLayerMasks& masks);

// "256:32768,32:8192,8:2048" (chunk:keep[:pool] per stage, as flags give them) into stages (a
// pool not given is 0: the mode's default); the rules are checked when the mode is made.
// InvalidArgument naming the entry that does not parse.
absl::StatusOr<std::vector<HipStage>> ParseHipStages(std::string_view text);
// "0,1,2,3" (a comma-separated list of integers, as flags give them; "" is none).
absl::StatusOr<std::vector<int64_t>> ParseIntList(std::string_view text);

}  // namespace longview
