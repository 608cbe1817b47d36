// RMSNorm with the residual add fused in front (the pre-norm transformer's "add & norm"):
//
//   residual[i, :] += x[i, :]                        (rounded to the element type and stored)
//   out[i, :] = residual[i, :] / sqrt(mean(residual[i, :]^2) + eps) * weight[:]
//
// The norm reads the *rounded* residual, as Hugging Face's `residual + hidden` in bf16/fp16 does;
// statistics and the product are float32, `out` is rounded once. Any hidden size; rows whose
// pointers and size allow it use 16-byte accesses. x == nullptr skips the add (plain RMSNorm).
// CPU reference: kernels/cpu/ops.h RmsNorm + AddInPlace; tests/gpu has a double reference.
//
//   RmsNormArgs a{.dtype = DType::kBF16, .num_rows = m, .hidden = n, .eps = 1e-5f,
//                 .x = x, .residual = res, .weight = w, .out = out};
//   LV_CUDA_RETURN_IF_ERROR(FusedAddRmsNorm(a, stream));
// Thread-safety: enqueues work on `stream` only; capturable in a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/dtype.h"

namespace longview::cuda {

struct RmsNormArgs {
  DType dtype = DType::kBF16;
  int64_t num_rows = 0;
  int64_t hidden = 0;
  float eps = 1e-5f;
  const void* x = nullptr;  // [num_rows][hidden], or nullptr for no residual add
  void* residual = nullptr;  // [num_rows][hidden], read and written
  const void* weight = nullptr;  // [hidden]
  void* out = nullptr;  // [num_rows][hidden]; must not overlap x or residual
};

// REQUIRES: num_rows >= 0, hidden >= 1; returns cudaErrorInvalidValue otherwise.
cudaError_t FusedAddRmsNorm(const RmsNormArgs& args, cudaStream_t stream);

}  // namespace longview::cuda
