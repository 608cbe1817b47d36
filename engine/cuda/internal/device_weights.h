// The CUDA backend's weights on the device (engine/cuda internal): fused projections so a layer
// runs three GEMMs on its input (QKV, gate/up) instead of five, all in one element type.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "engine/model/model_config.h"
#include "engine/model/weights.h"
#include "kernels/cuda/dtype.h"

namespace longview::cuda_internal {

// The bits of `f` in a 16-bit dtype (round to nearest even).
uint16_t DTypeBits(float f, cuda::DType t);

struct DeviceLayer {
  void* input_norm = nullptr;  // [hidden]
  void* qkv = nullptr;         // [q_dim + 2 kv_dim][hidden]: q_proj, k_proj, v_proj rows
  void* qkv_bias = nullptr;    // [q_dim + 2 kv_dim] or null
  void* o = nullptr;           // [hidden][q_dim]
  void* post_norm = nullptr;   // [hidden]
  void* gate_up = nullptr;     // [2 inter][hidden]: gate_proj rows, then up_proj rows
  void* down = nullptr;        // [hidden][inter]
};

struct DeviceWeights {
  void* embed = nullptr;    // [vocab][hidden]
  void* lm_head = nullptr;  // [vocab][hidden]; == embed when tied
  void* final_norm = nullptr;
  std::vector<DeviceLayer> layers;
  std::vector<void*> allocations;  // owned, freed by Free
  int64_t bytes = 0;

  void Free();
};

// Converts `w` to `dtype` and uploads it. InvalidArgument when a tensor's size does not match
// `cfg` (LoadModelWeights already checked names and shapes).
absl::StatusOr<DeviceWeights> UploadWeights(const ModelConfig& cfg, const ModelWeights& w,
                                            cuda::DType dtype);

// Random weights in `cfg`'s shape: linear weights uniform in ±1/sqrt(fan_in), embeddings uniform
// in ±1, norms 1, biases 0 — values do not change speed, only the shape does.
absl::StatusOr<DeviceWeights> RandomWeights(const ModelConfig& cfg, cuda::DType dtype,
                                            uint64_t seed);

// Fills n elements of dtype with uniform(-scale, scale) from a counter hash of (seed, i), or with
// `scale` itself when constant. Enqueued on the default stream.
cudaError_t FillDevice(void* p, int64_t n, cuda::DType dtype, float scale, uint64_t seed,
                       bool constant);

}  // namespace longview::cuda_internal
