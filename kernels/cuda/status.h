// The kernels facade's error conversion: cudaError_t -> absl::Status (STYLE: Errors).
// cudaErrorInvalidValue (what the kernels return for bad arguments and unsupported dispatch
// values) becomes InvalidArgument; every other error is Internal, with CUDA's own message.
//
//   RETURN_IF_ERROR(CudaStatus(RunDecodeAttention(plan, args, ws, ws_bytes, stream), "decode"));
#pragma once

#include <cuda_runtime.h>

#include <string_view>

#include "absl/status/status.h"

namespace longview::cuda {

absl::Status CudaStatus(cudaError_t err, std::string_view what);

}  // namespace longview::cuda
