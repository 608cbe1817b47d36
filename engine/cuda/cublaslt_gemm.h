// Row-major GEMMs of the CUDA backend through cuBLASLt: Y[m][n] = X[m][k] · W[n][k]ᵀ (+ bias[n]),
// the shape of every linear layer with Hugging Face's [out_features, in_features] weights.
// bf16 / fp16 inputs, float32 accumulation, output in the input type or float32 (logits).
//
// Algorithms come from cuBLASLt's heuristic once per (m, n, k, types) and are cached, so a call
// inside CUDA-graph capture only launches: warm the shapes up (same call) before capturing.
// For skinny GEMMs (m <= kTuneMaxM: decode steps, bound by reading the weights) the first call
// outside a capture times cuBLASLt's top candidates on the real operands and keeps the fastest:
// the heuristic's first pick is often not the fastest at m = 1. For m <= kGemvMaxM the
// project's own GEMV kernel (kernels/cuda/gemv) is timed too, and wins where it is faster.
//
//   ASSIGN_OR_RETURN(auto gemm, CublasLtGemm::Create(/*workspace_bytes=*/32 << 20));
//   RETURN_IF_ERROR(gemm->Run({.dtype = DType::kBF16, .m = tokens, .n = 4096, .k = 4096,
//                              .x = xn, .w = wq, .y = q}, stream));
// Thread-safety: one instance per stream owner (the model runner); not shared.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "common/status.h"
#include "kernels/cuda/dtype.h"

#include <cublasLt.h>

namespace longview::cuda {

struct GemmArgs {
  DType dtype = DType::kBF16;  // of x, w, bias (and y unless y_float32)
  int64_t m = 0, n = 0, k = 0;
  const void* x = nullptr;     // [m][k]
  const void* w = nullptr;     // [n][k]
  const void* bias = nullptr;  // [n] or nullptr
  void* y = nullptr;           // [m][n]
  bool y_float32 = false;      // y is float32 (logits)
  int64_t ldy = 0;             // elements between rows of y; 0 = n
};

class CublasLtGemm {
 public:
  static constexpr int64_t kTuneMaxM = 256;
  // Internal if cuBLASLt cannot start; allocates the workspace on the current device.
  static absl::StatusOr<std::unique_ptr<CublasLtGemm>> Create(size_t workspace_bytes);
  ~CublasLtGemm();
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // InvalidArgument for bad sizes or null pointers; Internal when cuBLASLt finds no algorithm
  // or fails. m == 0 does nothing.
  absl::Status Run(const GemmArgs& args, cudaStream_t stream);

 private:
  struct Plan;
  CublasLtGemm(cublasLtHandle_t handle, void* workspace, size_t workspace_bytes);
  absl::StatusOr<const Plan*> PlanFor(const GemmArgs& args, cudaStream_t stream);
  // The fastest of `candidates` on the real operands (times them on `stream`), and its time.
  absl::StatusOr<std::pair<cublasLtMatmulAlgo_t, float>> Fastest(
      const Plan& plan, const GemmArgs& args, const cublasLtMatmulHeuristicResult_t* candidates,
      int num_candidates, cudaStream_t stream);
  // Milliseconds of kRuns launches of `launch` on `stream` (after one untimed launch); -1 when
  // the launch fails.
  template <typename F>
  absl::StatusOr<float> Time(F launch, cudaStream_t stream);

  cublasLtHandle_t handle_;
  void* workspace_;
  size_t workspace_bytes_;
  // (m, n, k, dtype, y_float32, bias, ldy) -> descriptors and algorithm.
  std::map<std::tuple<int64_t, int64_t, int64_t, int, bool, bool, int64_t>, std::unique_ptr<Plan>>
      plans_;
};

}  // namespace longview::cuda
