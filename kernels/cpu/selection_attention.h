// CPU reference of attention over a KV selection (kernels/kv_selection.h): the one kernel
// every attention mode runs, whatever keys it selected and whatever positions it gave them.
//
// Keys are cached before RoPE; each selected key is rotated here to its position in the
// selection. Query i arrives already rotated to q_pos[i] and sees the selected keys at positions
// k with k <= q_pos[i] and, when params.window > 0, k > q_pos[i] - params.window. Grouped-query
// attention: query head h reads KV head h / (num_q_heads / num_kv_heads), through that head's
// spans. A query that sees no key gets a zero output.
//
//   KvSelection sel = DenseSelection(table.blocks(), page_size, kv_len);
//   SelectionAttention(params, view, rope, sel, q, q_pos, n_q, out);
// Thread-safety: reentrant; uses a few threads over KV heads.
#pragma once

#include <cstdint>

#include "kernels/kv_selection.h"
#include "kernels/cpu/paged_attention.h"
#include "kernels/cpu/rope.h"

namespace longview::cpu {

// q, out: [n_q, num_q_heads, head_dim]. kv.block_table is not read: pages come from the spans.
// key_stats (optional): per-key attention for KV policies: for each KV head in order, one float
// per key of its spans (in their order), to which the attention probability of that key under
// each of the head's query heads, for the rows i >= stats_from_row, is added.
// REQUIRES: every span lies inside a page of the pool; selection.head_begin is empty or has
// num_kv_heads + 1 entries.
void SelectionAttention(const AttentionParams& params, const PagedKvView& kv,
                        const RopeTable& rope, const KvSelection& selection, const float* q,
                        const int64_t* q_pos, int64_t n_q, float* out,
                        float* key_stats = nullptr, int64_t stats_from_row = 0);

}  // namespace longview::cpu
