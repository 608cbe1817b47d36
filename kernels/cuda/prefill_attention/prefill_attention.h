// Paged prefill attention on tensor cores: a variable-length batch of query chunks, each attending
// causally to its sequence's cached prefix plus itself, over keys cached before RoPE.
//
// Layouts (elements are `dtype`, bf16 or fp16; accumulation float32):
//   q             [total_q][num_q_heads][head_dim], row r at q + r * q_row_stride (so q can be
//                 read straight out of a fused QKV projection); q arrives UNROTATED.
//   out           [total_q][num_q_heads][head_dim], contiguous.
//   q_start       int32 [batch + 1] (cu_seqlens): sequence b's queries are rows
//                 q_start[b] .. q_start[b + 1] - 1; n_b = q_start[b + 1] - q_start[b].
//   kv_lens       int32 [batch]: keys [0, kv_len) of sequence b are in the pages; its n_b queries
//                 are the LAST n_b tokens, query i at token t = kv_len - n_b + i (chunked prefill).
//   pages         the KV pool, page p at pages + p * page_stride; one layer's K of slot s of a page
//                 at + k_offset + s * token_stride, V at + v_offset + ..., token_stride =
//                 num_kv_heads * head_dim, a token's row [kv_head][head_dim] (kvcache/kv_layout.h).
//   block_tables  int32 [batch][block_table_stride]: logical block -> page id. Entries of blocks
//                 no query of the chunk can see (outside sinks + window) may be -1: never read.
//   window/sinks  int32 [batch] or nullptr (= shape.window / shape.sinks for every sequence).
//   rope_lo/hi    exact RoPE tables of decode_attention/rope_tables.h (device copies).
// Semantics (engine/cpu_model.cc, kernels/kv_selection.h): the query at token t sees keys
// j <= t; with window W > 0 only t - W < j (the query counts in the window); with sinks S > 0
// (1 <= S <= W) also every j < S, at StreamingLLM's re-assigned positions (sinks 0..S-1, window
// contiguous after them, the query last). Query head h reads KV head h / (num_q_heads /
// num_kv_heads). Keys and queries are rotated in-kernel (Llama half-split pairs (i, i + D/2)).
//
// Kernels (see NOTES.md): a one-block prepare kernel (per-sequence bounds, prefix sums), a
// gather kernel that rotates each visible key once at its position and copies it and its value
// into a contiguous workspace, and the attention kernel over that workspace: on compute
// capability 9.0 with head_dim 128 a warp-specialised wgmma kernel (the gather then writes
// swizzled tile images), else a FlashAttention-2 style mma.sync kernel.
//
// Plan/run split (FlashInfer): PlanPrefillAttention runs on the host (queries the device, sets
// kernel attributes; not capturable); RunPrefillAttention only launches, so it can be captured in
// a CUDA graph and replayed while q_start, kv_lens, window, sinks and block tables change on the
// device within the plan's bounds. A sequence outside them (q_start[batch] > max_total_q, keys
// beyond max_total_kv, kv_len beyond the block table or the RoPE tables, n_b > kv_len, bad
// window/sinks) gets NaN outputs (nothing if its q rows themselves are out of range), never
// truncated attention.
//
//   PrefillAttentionShape s{.dtype = DType::kBF16, .head_dim = 128, .num_q_heads = 32,
//                           .num_kv_heads = 8, .batch_size = b, .page_size = 16,
//                           .max_total_q = 8192, .max_total_kv = 65536,
//                           .rope_hi_rows = tables.num_hi_rows};
//   PrefillAttentionPlan plan;
//   LV_CUDA_RETURN_IF_ERROR(PlanPrefillAttention(s, &plan));   // once, outside capture
//   ... allocate plan.workspace_bytes ...
//   LV_CUDA_RETURN_IF_ERROR(RunPrefillAttention(plan, args, ws, ws_bytes, stream));
// Thread-safety: Plan is reentrant; Run enqueues on `stream` only and uses the workspace, so two
// runs in flight need two workspaces.
//
// Selection mode (DESIGN §3–4; plan with max_spans > 0), the prefill side of decode attention's
// selection mode (decode_attention.h): instead of [0, kv_len) through a block table under the
// window/sinks rule, each row — a sequence, or a (sequence, KV head) with spans_per_kv_head —
// reads exactly the keys of its spans (KvSpan, KvSpan's layout; span_offsets is CSR:
// row r reads spans[span_offsets[r], span_offsets[r + 1]), r = b or b * num_kv_heads + kv_head,
// a KV head's spans after those of the previous head, KvSelection::head_begin's order).
// A span's keys are consecutive slots of one page at consecutive positions from first_position.
// Query row i (of the whole batch) sits at position q_positions[i]: the caller gives every query
// its position (int32 [total_q], any values: consecutive for a chunk, re-numbered for ReKV).
// Semantics are cpu::SelectionAttention's with window 0: the query at position p attends the
// selected keys of its KV head whose position is <= p, keys rotated at their span positions
// and q at p (exact tables, in-kernel); spans need not be in page or position order (the mask
// is by position, not by index). A query that sees no key gets zeros. Block tables, kv_lens,
// window and sinks are not read: a page no span names is never touched (-1 entries are fine).
// q_start still gives each sequence's query rows. A row with more than max_spans spans or a
// malformed span (a negative field, count > page_size - first_slot, a position beyond the
// tables) gives NaN for the heads that read it, as does a query whose position is negative or
// beyond the tables (its row only), and a head row past the workspace (see max_total_kv).
// Kernels: a span scan (one block per row: validation, each span's key offset), a one-block
// prepare, a gather that copies every selected key (rotated at its position), its value and
// its position into a contiguous per-(sequence, KV head) workspace, then the mma.sync attention
// kernel masking key position vs query position (a warp skips key tiles no row of it sees).
// The Hopper wgmma kernel is rule-only: Plan picks mma.sync for selection mode. Span arrays and
// q_positions live at fixed device addresses: rewrite them before each run or graph replay,
// within the plan's bounds.
//
// How modes build prefill selections (the host, every chunk; positions are the modes' own):
//   Dense chunked prefill: DenseSelection(kv_len), q_positions = the chunk's token indices.
//   StreamingLLM for one query (decode-sized chunks): SinkWindowSelection(t) and the
//     re-assigned query position it returns (the rule mode does whole chunks of it directly).
//   ReKV: sinks at 0..S-1, then the retrieved blocks re-numbered contiguously after them
//     (AppendTokenRange per block, in retrieval order), then the local window and the chunk
//     itself contiguously after those; q_positions = the chunk's re-numbered positions, so the
//     chunk attends itself causally and everything retrieved before it.
//   HiP: spans_per_kv_head; per (sequence, KV head) row sinks + that head's selected blocks at
//     their (extended) positions + the chunk, in any order; q_positions = the chunk's positions.
//
//   shape.max_spans = sink_pages + retrieved_blocks + (window + max_chunk) / page_size + 2;
//   shape.max_total_kv = sum over sequences of the keys a KV head reads;
//   PlanPrefillAttention(shape, &plan);   // plan.kernel == 0
//   args.spans = d_spans; args.span_offsets = d_offsets; args.q_positions = d_qpos;
//   RunPrefillAttention(plan, args, ws, ws_bytes, stream);
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/decode_attention/decode_attention.h"
#include "kernels/cuda/dtype.h"

namespace longview::cuda {

struct PrefillAttentionShape {
  DType dtype = DType::kBF16;
  int head_dim = 128;  // 64 or 128
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int batch_size = 0;
  int page_size = 16;   // any value >= 1
  int max_total_q = 0;  // upper bound of q_start[batch]
  // Upper bound of the keys the chunks can see, summed over the batch: per sequence kv_len, or
  // with a window min(kv_len, sinks + window + n_b - 1). Sizes the key/value workspace.
  int64_t max_total_kv = 0;
  int rope_hi_rows = 0;  // RopeTablesHost::num_hi_rows; positions < rope_hi_rows * 1024
  int window = 0;        // every sequence's window when args.window == nullptr (0 = full causal)
  int sinks = 0;         // every sequence's sinks when args.sinks == nullptr; 1 <= sinks <= window
  // Selection mode when > 0 (see above): the most spans of any row. window and sinks must then
  // be 0, and max_total_kv bounds, for every KV head, that head's selected keys summed over the
  // batch (a shared selection counts once per head); the rows are stored in order (sequence,
  // KV head) and the first whose keys pass num_kv_heads * max_total_kv gets NaN.
  int max_spans = 0;
  bool spans_per_kv_head = false;  // rows are (sequence, KV head), else sequences
};

struct PrefillAttentionPlan {
  PrefillAttentionShape shape;
  // 0: mma.sync FlashAttention-2 kernel (head_dim 64, other devices); 1: Hopper wgmma kernel
  // (head_dim 128 on compute capability 9.0; LONGVIEW_PREFILL_MMA_SYNC=1 at plan time forces 0).
  int kernel = 0;
  int num_tile_slots = 0;  // grid rows: ceil(max_total_q / (64 | 128)) + batch_size
  size_t smem_bytes = 0;   // dynamic shared memory of the attention kernel
  size_t meta_bytes = 0;   // per-sequence bounds at the workspace's start
  size_t kv_bytes = 0;     // each of the rotated-K and V copies
  size_t workspace_bytes = 0;
};

struct PrefillAttentionArgs {
  const void* q = nullptr;
  int64_t q_row_stride = 0;  // elements, >= num_q_heads * head_dim, multiple of 8
  void* out = nullptr;
  const void* pages = nullptr;
  int64_t page_stride = 0;  // elements
  int64_t k_offset = 0;     // elements
  int64_t v_offset = 0;     // elements
  const int32_t* block_tables = nullptr;
  int block_table_stride = 0;
  const int32_t* q_start = nullptr;  // [batch + 1]
  const int32_t* kv_lens = nullptr;  // [batch]
  const int32_t* window = nullptr;   // [batch], nullable
  const int32_t* sinks = nullptr;    // [batch], nullable
  // Selection mode only (then block_tables, kv_lens, window and sinks are not read):
  const KvSpan* spans = nullptr;    // 8-byte aligned
  const int32_t* span_offsets = nullptr;  // [rows + 1], rows = batch (* num_kv_heads per head)
  const int32_t* q_positions = nullptr;   // [total_q]: RoPE position of each query row
  const float* rope_lo = nullptr;
  const float* rope_hi = nullptr;
  float scale = 0.f;  // softmax scale, usually 1 / sqrt(head_dim); > 0
};

// Validates the shape (cudaErrorInvalidValue on a bad or unsupported value: head_dim not 64/128,
// heads not grouping, sinks without a window or sinks > window, bounds out of range; selection
// mode with a window or sinks, negative max_spans, spans_per_kv_head without max_spans) and fills
// `plan`.
cudaError_t PlanPrefillAttention(const PrefillAttentionShape& shape, PrefillAttentionPlan* plan);

// REQUIRES: `plan` from PlanPrefillAttention; workspace of at least plan.workspace_bytes, 16-byte
// aligned (cudaMalloc); q, out, pages, rope tables 16-byte aligned; q_row_stride, page_stride,
// k_offset, v_offset multiples of 8. Only launches kernels (3 launches; selection mode 4).
cudaError_t RunPrefillAttention(const PrefillAttentionPlan& plan, const PrefillAttentionArgs& args,
                                void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace longview::cuda
