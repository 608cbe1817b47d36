// CPU reference of paged attention over keys cached before RoPE: dense (or model-windowed)
// attention, built as the selection of every visible key (kernels/cpu/selection_attention.h).
//
// Pages are read through a PagedKvView: one layer's K and V inside pages laid out as
// [layer][k|v][token][kv_head][head_dim] (DESIGN §3). Key j (logical token index in the
// sequence) has position j and is rotated inside the kernel; query i has position q_pos[i] and
// arrives already rotated. A query at position p attends keys j with j <= p and, when
// window > 0, j > p - window (transformers' sliding-window convention). Grouped-query attention:
// query head h reads KV head h / (num_q_heads / num_kv_heads).
//
//   PagedAttention(params, view, rope, q, q_pos, n_q, kv_len, out);
// Thread-safety: reentrant; uses a few threads over KV heads.
#pragma once

#include <cstdint>

#include "kernels/cpu/rope.h"

namespace longview::cpu {

struct PagedKvView {
  const float* pages = nullptr;  // page 0 of the pool
  int64_t page_elements = 0;     // elements per page
  int64_t k_offset = 0;          // this layer's K inside a page
  int64_t v_offset = 0;          // this layer's V inside a page
  int64_t token_stride = 0;      // elements between consecutive tokens (num_kv_heads * head_dim)
  int64_t page_size = 0;
  const int32_t* block_table = nullptr;  // logical block -> page id
  int64_t num_blocks = 0;
};

struct AttentionParams {
  int64_t num_q_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
  int64_t window = 0;  // 0 = full causal attention
};

// q, out: [n_q, num_q_heads, head_dim]. kv_len: keys [0, kv_len) are valid in the pages.
// REQUIRES: every q_pos[i] < kv_len; kv_len <= num_blocks * page_size.
void PagedAttention(const AttentionParams& params, const PagedKvView& kv, const RopeTable& rope,
                    const float* q, const int64_t* q_pos, int64_t n_q, int64_t kv_len, float* out);

}  // namespace longview::cpu
