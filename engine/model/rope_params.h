// The model's RoPE (theta, scaling) in the form the kernels take; every backend rotates with it.
//
//   cpu::RopeTable rope(cpu::InvFrequencies(RopeParamsOf(cfg)), cfg.head_dim);
#pragma once

#include "engine/model/model_config.h"
#include "kernels/cpu/rope.h"

namespace longview {

cpu::RopeParams RopeParamsOf(const ModelConfig& cfg);

}  // namespace longview
