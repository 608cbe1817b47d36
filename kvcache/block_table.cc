#include "kvcache/block_table.h"

#include <algorithm>

namespace longview {

int32_t BlockTable::BlocksNeeded(int64_t num_tokens) const {
  int64_t blocks = (num_tokens + page_size_ - 1) / page_size_;
  return static_cast<int32_t>(std::max<int64_t>(0, blocks - static_cast<int64_t>(blocks_.size())));
}

void BlockTable::Append(std::span<const int32_t> block_ids) {
  blocks_.insert(blocks_.end(), block_ids.begin(), block_ids.end());
}

std::vector<int32_t> BlockTable::Release() {
  std::vector<int32_t> out;
  out.swap(blocks_);
  return out;
}

}  // namespace longview
