// Writes new tokens' K (before RoPE, DESIGN §3) and V into KV pages through a slot mapping.
//
// Pages hold [layer][k|v][token][kv_head][head_dim] (kvcache/kv_layout.h); one call writes one
// layer, addressed by element offsets into each page. Token t goes to page slot_mapping[t] /
// page_size, token-in-page slot_mapping[t] % page_size (vLLM's convention); a negative slot skips
// the token (padding). 16-byte copies: the row num_kv_heads * head_dim must be a multiple of 8.
// Source rows may be strided (k_row_stride / v_row_stride elements between tokens), so K and V can
// be read straight from the fused QKV projection's [q | k | v] rows: k = qkv + q_width,
// v = qkv + q_width + kv_width, both strides q_width + 2 * kv_width.
// The copy is bitwise, so no rounding; the dtype is checked only for the dispatch contract.
//
//   KvAppendArgs a{.dtype = DType::kBF16, .num_tokens = n, .num_kv_heads = 8, .head_dim = 128,
//                  .page_size = 16, .k = k, .v = v, .slot_mapping = slots, .pages = pool,
//                  .page_stride = layout.PageElements(),
//                  .k_offset = layout.Offset(layer, KvLayout::kKey, 0, 0),
//                  .v_offset = layout.Offset(layer, KvLayout::kValue, 0, 0)};
//   LV_CUDA_RETURN_IF_ERROR(PagedKvAppend(a, stream));
// Thread-safety: enqueues work on `stream` only; capturable in a CUDA graph. Two tokens with the
// same slot race (the caller's block tables never do that).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/dtype.h"

namespace longview::cuda {

struct KvAppendArgs {
  DType dtype = DType::kBF16;
  int64_t num_tokens = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // 64 or 128
  int page_size = 0;  // tokens per page, any value >= 1
  const void* k = nullptr;  // token t's [num_kv_heads][head_dim] at k + t * k_row_stride
  const void* v = nullptr;  // token t's [num_kv_heads][head_dim] at v + t * v_row_stride
  const int64_t* slot_mapping = nullptr;  // [num_tokens], device; < 0 = skip
  void* pages = nullptr;  // page 0 of the pool
  int64_t page_stride = 0;  // elements per page
  int64_t k_offset = 0;  // this layer's K inside a page, elements
  int64_t v_offset = 0;  // this layer's V inside a page, elements
  int64_t k_row_stride = 0;  // elements between tokens' K rows; 0 = num_kv_heads * head_dim
  int64_t v_row_stride = 0;  // elements between tokens' V rows; 0 = num_kv_heads * head_dim
  // Optional, fused (a decode step's q rotation rides along, one kernel fewer per layer): the
  // first num_q_rows tokens' q heads, at q + t * q_row_stride, are rotated in place at
  // q_positions[t] exactly as RotateRows (rope/rope.h) does, bit for bit. q == nullptr: none.
  void* q = nullptr;
  int num_q_heads = 0;
  int64_t q_row_stride = 0;  // 0 = num_q_heads * head_dim
  int64_t num_q_rows = 0;    // <= num_tokens
  const int32_t* q_positions = nullptr;
  const float* rope_lo = nullptr;
  const float* rope_hi = nullptr;
  int rope_hi_rows = 0;
};

// REQUIRES: pointers 16-byte aligned, page_stride / k_offset / v_offset multiples of 8 elements,
// row strides 0 or multiples of 8 no smaller than num_kv_heads * head_dim; returns
// cudaErrorInvalidValue otherwise.
cudaError_t PagedKvAppend(const KvAppendArgs& args, cudaStream_t stream);

}  // namespace longview::cuda
