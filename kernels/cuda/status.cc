#include "kernels/cuda/status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace longview::cuda {

absl::Status CudaStatus(cudaError_t err, std::string_view what) {
  if (err == cudaSuccess) return absl::OkStatus();
  const std::string msg =
      absl::StrCat(std::string(what), ": ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
  if (err == cudaErrorInvalidValue) return absl::InvalidArgumentError(msg);
  return absl::InternalError(msg);
}

}  // namespace longview::cuda
