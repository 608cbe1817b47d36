// One span of a KV selection (kernels/kv_selection.h): a run of consecutive slots inside one page
// and the RoPE position of its first key. One type for the CPU reference and the CUDA kernels
// (device code reads it as is), so host selections copy to the device without conversion.
#pragma once

#include <cstdint>

namespace longview {

struct KvSpan {
  int32_t page_id = 0;         // page in the pool
  int32_t first_slot = 0;      // first token slot inside the page
  int32_t count = 0;           // consecutive slots, first_slot + count <= page_size; 0 = none
  int32_t reserved = 0;        // padding, keeps the layout explicit for the device copy
  int64_t first_position = 0;  // RoPE position of the key at first_slot; the next ones follow
};
static_assert(sizeof(KvSpan) == 24);

}  // namespace longview
