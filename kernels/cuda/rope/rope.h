// In-place RoPE on rows of heads (Llama / NeoX "rotate half": for i < head_dim / 2 the pair
// (x[i], x[i + head_dim / 2]) is rotated by the angle position * inv_freq[i]).
//
// Layouts (elements are `dtype`, bf16 or fp16):
//   x          row r starts at element r * row_stride and holds num_heads heads of head_dim
//              ([num_heads][head_dim]); row_stride >= num_heads * head_dim lets the runner rotate
//              q (or k) in place inside the fused QKV projection's [q | k | v] rows.
//   positions  int32 [num_rows], device: the position of row r.
//   rope_lo/hi the exact tables of decode_attention/rope_tables.h (device copies, built for the
//              same inv_freq and head_dim). The angle is composed as decode attention does:
//              R(p) = R(hi * 1024) o R(lo) from the two tables, so it is exact to a few float32
//              ulps at any position the tables cover (float32 p * inv_freq is not, past ~1e5).
// The rotation is float32 with one rounding to the element type. A row whose position is negative
// or beyond the tables (>= rope_hi_rows * 1024) is written as NaN, never rotated by a wrong angle.
//
//   RotateRowsArgs a{.dtype = DType::kBF16, .num_rows = n, .num_heads = 32, .head_dim = 128,
//                    .row_stride = (32 + 2 * 8) * 128, .x = qkv, .positions = pos,
//                    .rope_lo = lo, .rope_hi = hi, .rope_hi_rows = tables.num_hi_rows};
//   LV_CUDA_RETURN_IF_ERROR(RotateRows(a, stream));  // q heads of the fused QKV output
// Thread-safety: enqueues work on `stream` only; capturable in a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/dtype.h"

namespace longview::cuda {

struct RotateRowsArgs {
  DType dtype = DType::kBF16;
  int64_t num_rows = 0;
  int num_heads = 0;
  int head_dim = 0;                    // 64 or 128
  int64_t row_stride = 0;              // elements between rows; 0 = num_heads * head_dim
  void* x = nullptr;                   // rotated in place
  const int32_t* positions = nullptr;  // [num_rows], device
  const float* rope_lo = nullptr;      // RopeTablesHost::lo on the device
  const float* rope_hi = nullptr;      // RopeTablesHost::hi on the device
  int rope_hi_rows = 0;                // RopeTablesHost::num_hi_rows
};

// REQUIRES: num_rows >= 0, num_heads >= 1, head_dim 64 or 128, row_stride 0 or >= num_heads *
// head_dim and a multiple of 8, x / rope_lo / rope_hi 16-byte aligned, rope_hi_rows >= 1;
// returns cudaErrorInvalidValue otherwise.
cudaError_t RotateRows(const RotateRowsArgs& args, cudaStream_t stream);

}  // namespace longview::cuda
