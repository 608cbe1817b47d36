// SwiGLU's gate: out[i, j] = silu(gate[i, j]) * up[i, j], silu(g) = g / (1 + exp(-g)).
//
// Rows are strided so gate and up can be the two halves of one fused projection
// ([rows][2 * n]: gate = p, up = p + n, both with stride 2 * n). float32 math, one rounding.
// 16-byte accesses when n, the strides and the pointers allow it.
// CPU reference: kernels/cpu/ops.h SiluMul; tests/gpu has a double reference.
//
//   SiluMulArgs a{.dtype = DType::kBF16, .num_rows = m, .n = inter, .gate = p, .up = p + inter,
//                 .out = act, .gate_stride = 2 * inter, .up_stride = 2 * inter, .out_stride = inter};
//   LV_CUDA_RETURN_IF_ERROR(SiluMul(a, stream));
// Thread-safety: enqueues work on `stream` only; capturable in a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/dtype.h"

namespace longview::cuda {

struct SiluMulArgs {
  DType dtype = DType::kBF16;
  int64_t num_rows = 0;
  int64_t n = 0;  // elements per row
  const void* gate = nullptr;
  const void* up = nullptr;
  void* out = nullptr;  // may alias gate or up element for element (same stride)
  int64_t gate_stride = 0;  // elements between rows; 0 = n
  int64_t up_stride = 0;
  int64_t out_stride = 0;
};

// REQUIRES: num_rows >= 0, n >= 1, strides 0 or >= n; returns cudaErrorInvalidValue otherwise.
cudaError_t SiluMul(const SiluMulArgs& args, cudaStream_t stream);

}  // namespace longview::cuda
