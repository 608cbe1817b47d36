#include "kvcache/block_pool.h"

#include <unordered_map>

#include "absl/strings/str_format.h"

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

absl::Status BlockPool::AddRef(int32_t block_id) {
  if (block_id < 0 || block_id >= num_blocks() || ref_counts_[block_id] <= 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("BlockPool::AddRef: block %d is not allocated", block_id));
  }
  ++ref_counts_[block_id];
  return absl::OkStatus();
}

absl::Status BlockPool::Free(std::span<const int32_t> block_ids) {
  // Check every id first (counting repeats), so a bad call changes nothing.
  std::unordered_map<int32_t, int32_t> drops;
  for (int32_t id : block_ids) {
    if (id < 0 || id >= num_blocks() || ref_counts_[id] < ++drops[id]) {
      return absl::FailedPreconditionError(
          absl::StrFormat("BlockPool::Free: block %d is not allocated", id));
    }
  }
  for (int32_t id : block_ids) {
    if (--ref_counts_[id] == 0) free_.push_back(id);
  }
  return absl::OkStatus();
}

}  // namespace longview
