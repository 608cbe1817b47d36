// Skinny GEMM for decode steps: y[i][j] = sum_k x[i][k] * w[j][k] (+ bias[j]) for m <= 8 rows
// of x, with w row-major [n][k] (Hugging Face's [out, in]). At m = 1 a decode step only streams
// the weights; this kernel reads each weight once with 16-byte non-allocating loads, 4 in
// flight per lane, one warp per output column, and keeps x in L1. The CUDA runner times it
// against cuBLASLt's candidates per shape and keeps whichever is faster
// (engine/cuda/cublaslt_gemm). bf16 / fp16 in, float32 accumulation; y in the input type or
// float32.
//
//   GemvArgs a{.dtype = DType::kBF16, .m = 1, .n = 4096, .k = 4096, .x = x, .w = w, .y = y};
//   LV_CUDA_RETURN_IF_ERROR(Gemv(a, stream));
// Thread-safety: enqueues on `stream` only; capturable in a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/dtype.h"

namespace longview::cuda {

inline constexpr int kGemvMaxM = 8;

struct GemvArgs {
  DType dtype = DType::kBF16;
  int m = 1;  // 1 .. kGemvMaxM
  int64_t n = 0;
  int64_t k = 0;               // multiple of 8
  const void* x = nullptr;     // [m][k], 16-byte aligned
  const void* w = nullptr;     // [n][k], 16-byte aligned
  const void* bias = nullptr;  // [n] or nullptr
  void* y = nullptr;           // [m][ldy]
  bool y_float32 = false;
  int64_t ldy = 0;  // elements between rows of y; 0 = n
};

// Whether Gemv takes these sizes and pointers (else cudaErrorInvalidValue).
bool GemvSupports(const GemvArgs& args);

cudaError_t Gemv(const GemvArgs& args, cudaStream_t stream);

}  // namespace longview::cuda
