// One stage of HiP's hierarchical pruning (docs/hip.md): the candidates cut into chunks of
// `chunk` tokens, the best `keep / chunk` chunks kept, scored by a block's queries averaged in
// groups of `pool` consecutive ones (v1.2's stage_block_stride_q; decode has one query). One
// type for the request's parameters (engine/attention/attention_spec.h) and the pruning kernels
// (kernels/cpu/hip_mask.h).
#pragma once

#include <cstdint>

namespace longview {

struct HipStage {
  int64_t chunk = 0;
  int64_t keep = 0;
  int64_t pool = 1;
  bool operator==(const HipStage&) const = default;
};

}  // namespace longview
