#include "engine/model/rope_params.h"

namespace longview {

cpu::RopeParams RopeParamsOf(const ModelConfig& cfg) {
  cpu::RopeParams p;
  p.head_dim = cfg.head_dim;
  p.theta = cfg.rope.theta;
  p.factor = cfg.rope.factor;
  p.low_freq_factor = cfg.rope.low_freq_factor;
  p.high_freq_factor = cfg.rope.high_freq_factor;
  p.original_max_position_embeddings = cfg.rope.original_max_position_embeddings;
  switch (cfg.rope.type) {
    case RopeType::kDefault: p.scaling = cpu::RopeScaling::kNone; break;
    case RopeType::kLinear: p.scaling = cpu::RopeScaling::kLinear; break;
    case RopeType::kLlama3: p.scaling = cpu::RopeScaling::kLlama3; break;
  }
  return p;
}

}  // namespace longview
