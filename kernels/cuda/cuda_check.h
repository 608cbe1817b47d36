// The one checking macro of the CUDA kernels (STYLE: Errors). Kernels return cudaError_t; the
// facade in kernels/cuda/status.h turns it into an absl::Status. Nothing here exits.
//
//   cudaError_t Launch(...) {
//     LV_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p, 0, n, stream));
//     MyKernel<<<grid, block, 0, stream>>>(params);
//     LV_CUDA_RETURN_IF_ERROR(cudaGetLastError());  // launch-configuration errors
//     return cudaSuccess;
//   }
#pragma once

#include <cuda_runtime.h>

// Returns the cudaError_t of `expr` from the enclosing function unless it is cudaSuccess.
#define LV_CUDA_RETURN_IF_ERROR(expr)                 \
  do {                                                \
    const cudaError_t lv_cuda_err_ = (expr);          \
    if (lv_cuda_err_ != cudaSuccess) return lv_cuda_err_; \
  } while (0)

// Bad arguments are reported as cudaErrorInvalidValue (the facade maps it to InvalidArgument).
#define LV_CUDA_REQUIRE(cond)                                  \
  do {                                                         \
    if (!(cond)) return cudaErrorInvalidValue;                 \
  } while (0)
