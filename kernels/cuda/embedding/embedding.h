// Token embedding lookup: out[i, :] = table[ids[i], :], a bitwise row copy.
//
// Layouts (elements are `dtype`, bf16 or fp16):
//   ids    int32 [num_tokens], device
//   table  [vocab_size][hidden]
//   out    [num_tokens][hidden]
// An id outside [0, vocab_size) writes a row of NaN (all bits set) instead of reading out of
// bounds: the host validates ids first, and NaN makes a slip visible downstream. Any hidden size;
// 16-byte copies when hidden % 8 == 0 and table and out are 16-byte aligned.
//
//   EmbeddingArgs a{.dtype = DType::kBF16, .num_tokens = n, .vocab_size = 128256,
//                   .hidden = 4096, .ids = ids, .table = embed_tokens, .out = hidden_states};
//   LV_CUDA_RETURN_IF_ERROR(EmbeddingLookup(a, stream));
// Thread-safety: enqueues work on `stream` only; capturable in a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/dtype.h"

namespace longview::cuda {

struct EmbeddingArgs {
  DType dtype = DType::kBF16;
  int64_t num_tokens = 0;
  int64_t vocab_size = 0;
  int64_t hidden = 0;
  const int32_t* ids = nullptr;  // [num_tokens], device
  const void* table = nullptr;   // [vocab_size][hidden]
  void* out = nullptr;           // [num_tokens][hidden]; must not overlap table
};

// REQUIRES: num_tokens >= 0, vocab_size >= 1, hidden >= 1, non-null pointers; returns
// cudaErrorInvalidValue otherwise.
cudaError_t EmbeddingLookup(const EmbeddingArgs& args, cudaStream_t stream);

}  // namespace longview::cuda
