// Element types of the CUDA kernels' activations, weights and KV pages. Accumulation is float32.
//
//   DType t = DType::kBF16;  DTypeName(t) == "bf16";  DTypeSize(t) == 2
#pragma once

#include <cstddef>

namespace longview::cuda {

enum class DType { kBF16, kFP16 };

inline const char* DTypeName(DType t) { return t == DType::kBF16 ? "bf16" : "fp16"; }
inline constexpr size_t DTypeSize(DType) { return 2; }

}  // namespace longview::cuda
