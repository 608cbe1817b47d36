// The host side of attention mode `hip` (DESIGN §4, docs/hip.md) for the backends: which middle
// a query block prunes, the pruning's parameters, and the selection a row reads once the block's
// chunks are chosen (kernels/cpu/hip_mask.h chooses them).
//
//   if (const HipAttention* h = attention->hip(); h != nullptr && HipPrunes(*h, first_token)) {
//     cpu::HipHeadRanges kept = cpu::HipSelect(HipMaskParamsFor(*h, nq, nkv, hd), view, rope,
//                                              q_before_rope, rows, HipStagesOf(*h),
//                                              HipMiddle(*h, first_token));
//     KvSelection sel = HipRowSelection(*h, blocks, page_size, first_token, token, kept);
//   }
// Thread-safety: pure functions.
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

// The tokens a query block whose first row is token `first_token` prunes: after the sinks,
// before the block's window (which starts `window` - 1 tokens before its first row).
cpu::HipRange HipMiddle(const HipAttention& h, int64_t first_token);
// True when that middle holds more than top_k tokens; otherwise its rows read every key.
bool HipPrunes(const HipAttention& h, int64_t first_token);
// v1.2's pruning: ranked over every query head, queries at window - first chunk + 1.
cpu::HipMaskParams HipMaskParamsFor(const HipAttention& h, int64_t num_q_heads,
                                    int64_t num_kv_heads, int64_t head_dim);
std::vector<cpu::HipStageParams> HipStagesOf(const HipAttention& h);
// What the row at token `token` of the block starting at `first_token` reads: the sinks, the
// kept ranges of each KV head, and the block's window up to the row. The window's keys keep their
// positions; the kept tokens, then the sinks, are packed just below it. One span list when every
// head kept the same ranges, else one per KV head.
// REQUIRES: first_token <= token; kept has one list per KV head, inside the middle.
KvSelection HipRowSelection(const HipAttention& h, std::span<const int32_t> block_table,
                            int64_t page_size, int64_t first_token, int64_t token,
                            const cpu::HipHeadRanges& kept);

// "256:32768,32:8192,8:2048" (chunk:keep per stage, as flags give them) into stages; the rules
// are checked when the mode is made. InvalidArgument naming the entry that does not parse.
absl::StatusOr<std::vector<HipStage>> ParseHipStages(std::string_view text);

}  // namespace longview
