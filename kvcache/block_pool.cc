#include "kvcache/block_pool.h"

#include <cstdlib>
#include <stdexcept>

namespace longview {

BlockPool::BlockPool(int32_t num_blocks) : ref_counts_(num_blocks, 0) {
  for (int32_t i = 0; i < num_blocks; ++i) free_.push_back(i);
}

std::optional<std::vector<int32_t>> BlockPool::Allocate(int32_t n) {
  if (!CanAllocate(n)) return std::nullopt;
  std::vector<int32_t> ids;
  ids.reserve(n);
  for (int32_t i = 0; i < n; ++i) {
    int32_t id = free_.front();
    free_.pop_front();
    ref_counts_[id] = 1;
    ids.push_back(id);
  }
  return ids;
}

void BlockPool::AddRef(int32_t block_id) {
  if (ref_counts_.at(block_id) <= 0) throw std::logic_error("BlockPool::AddRef on a free block");
  ++ref_counts_[block_id];
}

void BlockPool::Free(std::span<const int32_t> block_ids) {
  for (int32_t id : block_ids) {
    int32_t& rc = ref_counts_.at(id);
    if (rc <= 0) throw std::logic_error("BlockPool::Free on a free block");  // broken invariant
    if (--rc == 0) free_.push_back(id);
  }
}

}  // namespace longview
