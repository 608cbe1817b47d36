// HiP's hierarchical pruning on the GPU (InfiniteHiP v1.2; docs/hip.md): one stage for a batch
// of query blocks (one block per sequence: a decode row, or a prefill block's pooled queries).
// The oracle is kernels/cpu/hip_mask.h (HipRefineStage with share_heads, the v1.2 default the
// engine uses): the same cut, the same binary descent per query head, the same ranking (max over
// every query head, ties to the earlier chunk, kept chunks in position order), so the kept chunks
// are equal to the CPU's wherever no two compared scores are within float rounding (the GPU
// forms the same products in another order, and rotates the query instead of the key).
//
// RunHipStage: three launches on `stream`:
//   cut    (one CTA per block): the input ranges cut into chunks of `chunk` tokens (the last of a
//          range may be shorter); counts the block's tokens; decides whether it prunes (more
//          tokens than `keep` and more chunks than keep / chunk) — if not, every chunk is kept.
//   score  (8 warps per CTA, a half-warp per (chunk, query head)): the descent — lanes 0-7 probe
//          the left half's middle key, lanes 8-15 the right one's, dotted with the block's
//          queries rotated once into shared memory with the exact tables
//          (decode_attention/rope_tables.h): relative scheme, the keys as cached and the queries
//          at query_position - the probe's position (R(a)q . R(b)k = R(a - b)q . k, so no key
//          is rotated); chunk-indexed with one query (decode), the query rotated once per chunk by
//          its position less the chunk's rank; with several, each key rotated in-kernel to
//          the rank. A chunk's score is the largest probe on the way, max-reduced over query
//          heads with an order-preserving integer atomicMax.
//   select (one CTA per block): the keep / chunk best by an exact radix select of the threshold
//          score, then a stable compaction (ties: the earliest), so the output is in position
//          order.
//
// Layouts:
//   q           float [num_blocks][num_queries][num_q_heads][head_dim], before RoPE (pooled by the
//               caller where the stage pools).
//   first_query_position  int32 [num_blocks], >= 0 (a negative one is read as 0); chunk-indexed
//               only (query i of block b stands at
//               min(first_query_position[b] + i * query_stride, scan_chunks + scan_window)).
//   pages       dtype; the key of token t of block b, KV head h at pages + k_offset +
//               page * page_stride + (t % page_size) * num_kv_heads * head_dim + h * head_dim with
//               page = block_tables[b * block_table_stride + t / page_size] (keys before RoPE);
//               pages 16-byte aligned, k_offset and page_stride multiples of 8 elements.
//   in_ranges   HipChunk [num_blocks][max_ranges], in_count int32 [num_blocks]: the stage's
//               candidates, sorted, disjoint (stage 0: the middle as one range).
//   out_ranges  HipChunk [num_blocks][max_chunks], out_count int32 [num_blocks]: the kept chunks.
//   workspace   HipStageWorkspaceBytes(shape) bytes, 16-byte aligned.
//
//   HipStageShape s{.dtype = DType::kBF16, .head_dim = 128, .num_q_heads = 32, .num_kv_heads = 8,
//                   .page_size = 16, .num_blocks = b, .num_queries = 1, .max_ranges = 1,
//                   .max_chunks = (middle + 255) / 256, .rope_hi_rows = t.num_hi_rows,
//                   .chunk = 256, .keep = 32768, .query_position = 769};
//   LV_CUDA_RETURN_IF_ERROR(RunHipStage(s, args, stream));  // then the next stage's in_ranges =
//                                                           // this one's out_ranges
// Thread-safety: enqueues on `stream` only; capturable (no allocation, no host sync). A stage
// of more than 48 queries in the relative scheme raises the score kernel's shared-memory limit
// (cudaFuncSetAttribute) on each call: make one such call before capturing it.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/dtype.h"
#include "kernels/kv_span.h"

namespace longview::cuda {

// Token indices [begin, end) of a sequence.
struct HipChunk {
  int32_t begin = 0;
  int32_t end = 0;
};
static_assert(sizeof(HipChunk) == 8);

struct HipStageShape {
  DType dtype = DType::kBF16;
  int head_dim = 128;  // 64 or 128
  int num_q_heads = 0;
  int num_kv_heads = 0;  // num_q_heads % num_kv_heads == 0
  int page_size = 16;
  int num_blocks = 0;   // query blocks (sequences), <= 65535
  int num_queries = 1;  // per block, 1..64
  int max_ranges = 0;   // capacity of each block's in_ranges, >= 1
  int max_chunks = 0;   // capacity of each block's cut (and out_ranges), >= 1 and >= every
                        // block's chunks
  int rope_hi_rows = 0;
  // The stage and its RoPE scheme (kernels/cpu/hip_mask.h HipMaskParams).
  int chunk = 0;  // >= 1
  int keep = 0;   // >= chunk
  bool chunk_indexed = false;
  int query_position = 0;  // relative scheme (>= 1)
  int query_stride = 1;    // chunk-indexed: positions between consecutive (pooled) queries
  int scan_window = 0;     // chunk-indexed
  int scan_chunks = 0;     // chunk-indexed: HipScanChunks of the stage
};

struct HipStageArgs {
  const float* q = nullptr;
  const int32_t* first_query_position = nullptr;  // chunk-indexed only
  const void* pages = nullptr;
  int64_t page_stride = 0;  // elements
  int64_t k_offset = 0;     // elements
  const int32_t* block_tables = nullptr;
  int block_table_stride = 0;
  const HipChunk* in_ranges = nullptr;
  const int32_t* in_count = nullptr;
  HipChunk* out_ranges = nullptr;
  int32_t* out_count = nullptr;
  const float* rope_lo = nullptr;
  const float* rope_hi = nullptr;
  void* workspace = nullptr;
  float* chunk_scores = nullptr;  // optional [num_blocks][max_chunks]: each chunk's score (tests)
  // Optional [num_blocks]: 0 = leave the block alone (its out_ranges / out_count keep what an
  // earlier call wrote: a decode row whose stage is not due for refresh). nullptr = all run.
  const uint8_t* active = nullptr;
};

size_t HipStageWorkspaceBytes(const HipStageShape& shape);

// cudaErrorInvalidValue on a bad shape or argument; otherwise enqueues the three kernels. A
// block whose cut would exceed max_chunks keeps its first max_chunks chunks only (a caller's
// sizing error, never a stray write).
cudaError_t RunHipStage(const HipStageShape& shape, const HipStageArgs& args, cudaStream_t stream);

// What a decode row reads once its chunks are kept (engine/attention/hip.h HipRowSelection for
// a row that is its own block): the sinks, the kept chunks below the row's window, and the
// window up to the row; the window's keys at their own positions, the kept tokens packed just
// below it, the sinks below them; each piece split at page boundaries (AppendTokenRange), one
// span list per row in CSR order for selection decode attention (decode_attention.h).
//   window_begin = max(sinks, token + 1 - window), sinks read = min(sinks, window_begin).
// REQUIRES (as where the engine prunes): token >= sinks; the block table covers the row.
// A row needing more than max_spans spans gets max_spans + 1 spans, the last malformed (count
// -1), so the attention writes NaN for it instead of reading a partial selection.
struct HipSpansShape {
  int page_size = 16;
  int num_rows = 0;   // <= 65535
  int max_kept = 0;   // capacity of each row's kept list
  int max_spans = 0;  // spans per row the output holds (the attention plan's max_spans)
};
struct HipSpansArgs {
  const HipChunk* kept = nullptr;         // [num_rows][max_kept], sorted, disjoint
  const int32_t* kept_count = nullptr;    // [num_rows]
  const int32_t* block_tables = nullptr;  // [num_rows][block_table_stride]
  int block_table_stride = 0;
  const int32_t* token = nullptr;   // [num_rows]: the row's token index (its own position)
  const int32_t* sinks = nullptr;   // [num_rows]
  const int32_t* window = nullptr;  // [num_rows], >= 1
  KvSpan* spans = nullptr;          // num_rows * (max_spans + 1) capacity, CSR
  int32_t* span_offsets = nullptr;  // [num_rows + 1]
  void* workspace = nullptr;        // HipSpansWorkspaceBytes, 16-byte aligned
};
size_t HipSpansWorkspaceBytes(const HipSpansShape& shape);
cudaError_t RunHipSpans(const HipSpansShape& shape, const HipSpansArgs& args, cudaStream_t stream);

}  // namespace longview::cuda
