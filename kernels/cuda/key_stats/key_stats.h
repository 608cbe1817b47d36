// Per-key attention statistics for KV policies (kvcache/kv_policy.h, DESIGN §4): for each query
// row of a selection-decode step and each KV head, adds every key's attention probability, summed
// over the KV head's query heads, to a float accumulator. It runs after the selection decode
// attention of a layer (kernels/cuda/decode_attention, selection mode) and reads what that one
// read — the rotated q rows, the row's spans, the keys (rotated in-kernel with the exact tables)
// — plus the log2-sum-exp per query head that it wrote (DecodeAttentionArgs::lse), so
//   p(row, head, key) = 2^(scale * log2(e) * q_head . rot(k) - lse[row][head]).
// One pass over K (V is not read): about half the bytes of the attention it follows. The
// accumulation is atomic: rows of one sequence (a prefill chunk read as selection rows) and
// the layers add into the same sequence block, which the caller zeroes once per step.
//
// Layouts: q, pages, spans and span_offsets as in decode_attention.h (selection mode, one span
// list per row shared by the KV heads; per-KV-head lists are not supported here).
//   span_keys    int32 [spans]: index of the span's first key in its row's key order (the key
//                order of the sequence's selection; a row's spans are a prefix of it).
//   stats_base   int64 [num_rows]: offset in `stats` of (KV head 0, key 0) of the row's block,
//                -1 = no statistics for this row.
//   stats_stride int32 [num_rows]: keys per KV head in that block (>= the row's keys).
//   stats        float: stats[base + kv_head * stride + key] += sum over the KV head's query heads.
//
//   KeyStatsShape s{.dtype = DType::kBF16, .head_dim = 128, .num_q_heads = 32,
//                   .num_kv_heads = 8, .num_rows = rows, .page_size = 16, .max_spans = n,
//                   .rope_hi_rows = tables.num_hi_rows};
//   LV_CUDA_RETURN_IF_ERROR(RunKeyStats(s, args, stream));
// Thread-safety: enqueues on `stream` only; capturable (no allocation, no host sync).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/dtype.h"
#include "kernels/kv_span.h"

namespace longview::cuda {

struct KeyStatsShape {
  DType dtype = DType::kBF16;
  int head_dim = 128;  // 64 or 128
  int num_q_heads = 0;
  int num_kv_heads = 0;  // num_q_heads % num_kv_heads == 0, group <= 64
  int num_rows = 0;
  int page_size = 16;
  int max_spans = 0;  // the most spans of any row
  int rope_hi_rows = 0;
  int max_keys = 0;  // RunKeyStatsFromScores only: the most keys of any row
};

struct KeyStatsArgs {
  const void* q = nullptr;
  int64_t q_row_stride = 0;  // elements; 0 = num_q_heads * head_dim
  const float* lse = nullptr;  // [num_rows][num_q_heads], log2 domain
  const void* pages = nullptr;
  int64_t page_stride = 0;  // elements
  int64_t k_offset = 0;     // elements
  const KvSpan* spans = nullptr;
  const int32_t* span_offsets = nullptr;  // [num_rows + 1]
  const int32_t* span_keys = nullptr;     // [spans]
  const int64_t* stats_base = nullptr;    // [num_rows]
  const int32_t* stats_stride = nullptr;  // [num_rows]
  float* stats = nullptr;
  const float* rope_lo = nullptr;
  const float* rope_hi = nullptr;
  float scale = 0.f;  // the softmax scale the attention used
};

// cudaErrorInvalidValue on a bad shape or argument; otherwise launches one kernel. Malformed
// spans (as decode_attention.h defines them) are skipped.
cudaError_t RunKeyStats(const KeyStatsShape& shape, const KeyStatsArgs& args,
                        cudaStream_t stream);

// The fused path: the selection decode wrote every key's scaled score
// (DecodeAttentionArgs::scores, [q_head][scores_stride[row]] at scores_base[row]); this adds
// 2^(score - lse) summed over each KV head's query heads to the statistics blocks as above. It
// reads 4 bytes per key and query head instead of the key's K row: at B=64 T=32k the scores are
// ~3% of the attention's bytes (the standalone pass reads half of them again).
struct KeyStatsFromScoresArgs {
  const float* scores = nullptr;
  const int64_t* scores_base = nullptr;   // [num_rows], -1 = none
  const int32_t* scores_stride = nullptr; // [num_rows]: keys of the row
  const float* lse = nullptr;             // [num_rows][num_q_heads]
  const int64_t* stats_base = nullptr;    // [num_rows], -1 = none
  const int32_t* stats_stride = nullptr;  // [num_rows]
  float* stats = nullptr;
};
cudaError_t RunKeyStatsFromScores(const KeyStatsShape& shape, const KeyStatsFromScoresArgs& args,
                                  cudaStream_t stream);

}  // namespace longview::cuda
