// Paged decode attention: one query token per sequence over keys cached before RoPE.
//
// Layouts (elements are `dtype`, bf16 or fp16; accumulation float32):
//   q, out        [batch][num_q_heads][head_dim]; q arrives already rotated (RoPE at its position).
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
// per (partition, KV head, sequence, group of up to 4 query heads of the KV head) writes float
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
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/dtype.h"

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
};

struct DecodeAttentionPlan {
  DecodeAttentionShape shape;
  int partition_tokens = 0;
  int num_partitions = 0;
  size_t smem_bytes = 0;  // dynamic shared memory of the main kernel
  size_t workspace_bytes = 0;  // 0 when num_partitions == 1
};

struct DecodeAttentionArgs {
  const void* q = nullptr;
  void* out = nullptr;
  const void* pages = nullptr;
  int64_t page_stride = 0;  // elements
  int64_t k_offset = 0;  // elements
  int64_t v_offset = 0;  // elements
  const int32_t* block_tables = nullptr;
  int block_table_stride = 0;
  const int32_t* kv_lens = nullptr;
  const int32_t* pos_start = nullptr;  // nullable
  const float* rope_lo = nullptr;
  const float* rope_hi = nullptr;
  float scale = 0.f;  // softmax scale, usually 1 / sqrt(head_dim)
};

// Validates the shape (cudaErrorInvalidValue on a bad or unsupported value) and fills `plan`.
cudaError_t PlanDecodeAttention(const DecodeAttentionShape& shape, DecodeAttentionPlan* plan);

// REQUIRES: `plan` from PlanDecodeAttention; workspace of at least plan.workspace_bytes, 16-byte
// aligned (cudaMalloc); q, out, pages 16-byte aligned; page_stride, k_offset, v_offset multiples
// of 8. Only launches kernels.
cudaError_t RunDecodeAttention(const DecodeAttentionPlan& plan, const DecodeAttentionArgs& args,
                               void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace longview::cuda
