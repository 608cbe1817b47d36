// Paged decode attention: one query token per sequence over keys cached before RoPE.
//
// Layouts (elements are `dtype`, bf16 or fp16; accumulation float32):
//   q             row b at q + b * q_row_stride (0 = packed, num_q_heads * head_dim), inside it
//                 [num_q_heads][head_dim]; q arrives already rotated (RoPE at its position). A
//                 stride lets the runner pass the q part of a fused QKV GEMM output [q | k | v].
//   out           [batch][num_q_heads][head_dim], packed.
//   pages         the KV pool, page p at pages + p * page_stride; one layer's K of token s of a
//                 page at + k_offset + s * token_stride, V at + v_offset + ..., where
//                 token_stride = num_kv_heads * head_dim and a token's row is [kv_head][head_dim]
//                 (DESIGN §3: [layer][k|v][token][kv_head][head_dim], kvcache/kv_layout.h).
//   block_tables  int32 [batch][block_table_stride]: logical block -> page id.
//   kv_lens       int32 [batch]: keys [0, kv_len) are valid; the query is the last of them.
//   pos_start     int32 [batch] or nullptr (= 0): key j sits at position pos_start + j.
//   rope_lo/hi    tables from rope_tables.h (device copies); keys are rotated in-kernel.
// Query head h reads KV head h / (num_q_heads / num_kv_heads) (GQA, any group). With window > 0
// only keys j >= kv_len - window are attended (transformers' sliding-window convention).
//
// Split-KV: each (sequence, KV head) is cut into partitions of partition_tokens keys; one block
// per (partition, KV head, sequence, group of up to 8 query heads of the KV head) writes float
// partial outputs and log-sum-exps to the workspace that a combine kernel merges. With one partition the
// main kernel writes `out` directly and there is no workspace.
//
// Plan/run split (FlashInfer): PlanDecodeAttention runs on the host (may query the device and set
// kernel attributes; not capturable); RunDecodeAttention only launches, so it can be captured in a
// CUDA graph and replayed while lengths and block tables change on the device, within the plan's
// bounds. A sequence outside those bounds (kv_len > max_kv_len's partition cover or the block
// table, or a position beyond the RoPE tables) gets NaN outputs, never truncated attention.
// kv_len == 0 gives zeros.
//
//   DecodeAttentionShape s{.dtype = DType::kBF16, .head_dim = 128, .num_q_heads = 32,
//                          .num_kv_heads = 8, .batch_size = b, .page_size = 16,
//                          .max_kv_len = 32768, .max_position = 32767,
//                          .rope_hi_rows = tables.num_hi_rows};
//   DecodeAttentionPlan plan;
//   LV_CUDA_RETURN_IF_ERROR(PlanDecodeAttention(s, &plan));   // once, outside capture
//   ... allocate plan.workspace_bytes ...
//   LV_CUDA_RETURN_IF_ERROR(RunDecodeAttention(plan, args, ws, ws_bytes, stream));
// Thread-safety: Plan is reentrant; Run enqueues on `stream` only.
//
// Selection mode (DESIGN §3–4; plan with max_spans > 0): instead of [0, kv_len) through a block
// table, each row — a sequence, or a (sequence, KV head) with spans_per_kv_head — attends to
// exactly the keys of its spans (KvSpan, the CPU KvSpan's layout): span_offsets is
// CSR, row r reads spans[span_offsets[r], span_offsets[r + 1]), row r = b or b * num_kv_heads +
// kv_head. A span's keys are consecutive slots of one page at consecutive positions from
// first_position; they are rotated in-kernel with the exact tables as above. There is no
// position mask: the host selects (the CPU reference's mask `key position <= query position`
// holds for every selection its builders make). Spans need not be in page or position order.
// Block tables, kv_lens, pos_start and window are not read: a page that no span names is never
// touched (block-table entries of released pages may be -1). A row with no keys gives zeros; a
// row with more than max_spans spans or a malformed span (count > page_size - first_slot, a
// negative field, a position beyond the tables) gives NaN for the row's heads.
// Split-KV partitions are runs of partition_spans spans; a warp chunk never straddles spans
// (a span of count <= page_size gives ceil(page_size / chunk) chunks of 16 keys), so spans
// shorter than a chunk cost a whole chunk's arithmetic but only their bytes.
// The span arrays live at fixed device addresses: the host rewrites them (and the offsets)
// before each step or graph replay, within max_spans per row and the allocated span count.
//
// How modes plug in: every step the host builds each sequence's KvSelection (StreamingLLM:
// SinkWindowSelection with the re-assigned query position; ReKV: sinks + retrieved blocks
// + window with positions re-numbered contiguously, AppendTokenRange per block; HiP:
// sinks + window + its top-k blocks at their (extended) positions; eviction policies: the
// surviving slots as runs per page), rotates q to the query position it chose, and copies the
// spans into the fixed device arrays. Modes that choose blocks per KV head (HiP, score-based
// policies) set spans_per_kv_head and emit one CSR row per (sequence, KV head), spans of head h
// after those of head h - 1 (KvSelection::head_begin's order).
//
//   shape.max_spans = (sinks + ps - 1) / ps + window / ps + 2;  // StreamingLLM, per row
//   PlanDecodeAttention(shape, &plan);  // plan.partition_spans, plan.num_partitions
//   args.spans = d_spans; args.span_offsets = d_offsets;  // rewritten per step, same addresses
//   RunDecodeAttention(plan, args, ws, ws_bytes, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/dtype.h"
#include "kernels/kv_span.h"

namespace longview::cuda {

struct DecodeAttentionShape {
  DType dtype = DType::kBF16;
  int head_dim = 128;  // 64 or 128
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int batch_size = 0;
  int page_size = 16;  // any value >= 1
  int max_kv_len = 0;  // upper bound of every kv_len the run will see
  int64_t max_position = 0;  // upper bound of pos_start + kv_len - 1
  int window = 0;  // 0 = full causal attention
  int rope_hi_rows = 0;  // RopeTablesHost::num_hi_rows of the tables passed to Run
  int partition_tokens = 0;  // 0 = choose to fill the GPU; else keys per partition
  int num_sms = 0;  // 0 = read from the current device
  // Selection mode when > 0 (see above): the most spans of any row. max_kv_len and window are
  // then not used (window must be 0); max_position bounds every span key's position.
  int max_spans = 0;
  bool spans_per_kv_head = false;  // rows are (sequence, KV head), else sequences
  int partition_spans = 0;  // selection mode: 0 = choose to fill the GPU; else spans per partition
};


struct DecodeAttentionPlan {
  DecodeAttentionShape shape;
  int partition_tokens = 0;
  int num_partitions = 0;
  int partition_spans = 0;  // selection mode: spans per partition (partition_tokens is then 0)
  size_t smem_bytes = 0;  // dynamic shared memory of the main kernel
  size_t workspace_bytes = 0;  // 0 when num_partitions == 1
};

struct DecodeAttentionArgs {
  const void* q = nullptr;
  int64_t q_row_stride = 0;  // elements between sequences' q rows; 0 = num_q_heads * head_dim
  void* out = nullptr;
  const void* pages = nullptr;
  int64_t page_stride = 0;  // elements
  int64_t k_offset = 0;  // elements
  int64_t v_offset = 0;  // elements
  const int32_t* block_tables = nullptr;  // dense mode only
  int block_table_stride = 0;             // dense mode only
  const int32_t* kv_lens = nullptr;       // dense mode only
  const int32_t* pos_start = nullptr;     // dense mode only; nullable
  const KvSpan* spans = nullptr;    // selection mode only
  const int32_t* span_offsets = nullptr;  // selection mode only: [rows + 1]
  const float* rope_lo = nullptr;
  const float* rope_hi = nullptr;
  float scale = 0.f;  // softmax scale, usually 1 / sqrt(head_dim)
  // Optional [batch][num_q_heads]: each head's log2-sum-exp of its scaled scores,
  // log2(sum_j 2^(scale * log2(e) * q.k_j)), so that key j's attention probability is
  // 2^(scale * log2(e) * q.k_j - lse) (kernels/cuda/key_stats uses it). -inf for a row without
  // keys, NaN where the outputs are NaN.
  float* lse = nullptr;
  // Optional, selection mode with shared rows only: every key's scaled score, the exponent
  // above, for the rows with scores_base[row] >= 0, at
  //   scores[scores_base[row] + (query head) * scores_stride[row] + key index],
  // the key index being span_keys[span] (the index of the span's first key in the row's key
  // order) plus the key's offset in its span. Each row's keys must be covered by its spans
  // exactly once. With lse, kernels/cuda/key_stats turns them into per-key probabilities.
  float* scores = nullptr;
  const int32_t* span_keys = nullptr;     // [spans]
  const int64_t* scores_base = nullptr;   // [batch], -1 = none
  const int32_t* scores_stride = nullptr; // [batch]: keys of the row (>= them)
};

// Validates the shape (cudaErrorInvalidValue on a bad or unsupported value) and fills `plan`.
cudaError_t PlanDecodeAttention(const DecodeAttentionShape& shape, DecodeAttentionPlan* plan);

// REQUIRES: `plan` from PlanDecodeAttention; workspace of at least plan.workspace_bytes, 16-byte
// aligned (cudaMalloc); q, out, pages 16-byte aligned; page_stride, k_offset, v_offset and
// q_row_stride multiples of 8 (q_row_stride 0 or >= num_q_heads * head_dim). Selection mode:
// spans 8-byte aligned. Only launches kernels.
cudaError_t RunDecodeAttention(const DecodeAttentionPlan& plan, const DecodeAttentionArgs& args,
                               void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace longview::cuda
