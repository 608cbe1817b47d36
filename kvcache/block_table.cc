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

int32_t BlockTable::ReleaseBlock(int64_t index) {
  const int32_t id = blocks_[index];
  if (id < 0) return -1;
  blocks_[index] = -1;
  ++num_released_;
  return id;
}

std::vector<int32_t> BlockTable::Release() {
  std::vector<int32_t> out;
  out.swap(blocks_);
  if (num_released_ > 0) std::erase(out, -1);
  num_released_ = 0;
  return out;
}

BlockRange BlocksOutsideWindow(int64_t page_size, int64_t sinks, int64_t window,
                               int64_t next_token) {
  const int64_t begin = (sinks + page_size - 1) / page_size;
  const int64_t first_visible = next_token - window + 1;
  const int64_t end = first_visible <= 0 ? 0 : first_visible / page_size;
  return {.begin = begin, .end = std::max(begin, end)};
}

}  // namespace longview
