// Dispatch macros (FlashInfer DISPATCH_* style), one per template parameter. Each expands to a
// switch whose cases bind a compile-time name and run the body; an unsupported value returns
// cudaErrorInvalidValue (InvalidArgument through the facade). Bodies must `return`.
// Device-side header: include only from .cu files.
//
//   LV_DISPATCH_DTYPE(args.dtype, T, {
//     LV_DISPATCH_HEAD_DIM(args.head_dim, kHeadDim, { return Launch<T, kHeadDim>(args); });
//   });
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/dtype.h"

#define LV_DISPATCH_DTYPE(dtype, T, ...)           \
  switch (dtype) {                                 \
    case ::longview::cuda::DType::kBF16: {         \
      using T = __nv_bfloat16;                     \
      __VA_ARGS__                                  \
    }                                              \
      return cudaErrorInvalidValue; /* unreached */ \
    case ::longview::cuda::DType::kFP16: {         \
      using T = __half;                            \
      __VA_ARGS__                                  \
    }                                              \
      return cudaErrorInvalidValue; /* unreached */ \
    default:                                       \
      return cudaErrorInvalidValue;                \
  }

#define LV_DISPATCH_HEAD_DIM(head_dim, HD, ...) \
  switch (head_dim) {                           \
    case 64: {                                  \
      constexpr int HD = 64;                    \
      __VA_ARGS__                               \
    }                                           \
      return cudaErrorInvalidValue; /* unreached */ \
    case 128: {                                 \
      constexpr int HD = 128;                   \
      __VA_ARGS__                               \
    }                                           \
      return cudaErrorInvalidValue; /* unreached */ \
    default:                                    \
      return cudaErrorInvalidValue;             \
  }
