// A sequence's map from logical KV blocks to pages, and the slot each token position uses.
//
//   BlockTable table(/*page_size=*/16);
//   int32_t need = table.BlocksNeeded(num_tokens_after);   // then pool.Allocate(need)
//   table.Append(ids);
//   auto [page, slot] = table.Locate(pos);
// Thread-safety: not thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace longview {

class BlockTable {
 public:
  explicit BlockTable(int64_t page_size) : page_size_(page_size) {}

  int64_t page_size() const { return page_size_; }
  const std::vector<int32_t>& blocks() const { return blocks_; }
  // Tokens the table can hold without new blocks.
  int64_t Capacity() const { return static_cast<int64_t>(blocks_.size()) * page_size_; }
  // New blocks needed so that `num_tokens` tokens fit.
  int32_t BlocksNeeded(int64_t num_tokens) const;
  void Append(std::span<const int32_t> block_ids);
  // (page id, slot within page) of token position `pos`. REQUIRES: pos < Capacity().
  std::pair<int32_t, int64_t> Locate(int64_t pos) const {
    return {blocks_[pos / page_size_], pos % page_size_};
  }
  // Removes and returns all blocks (for freeing).
  std::vector<int32_t> Release();

 private:
  int64_t page_size_;
  std::vector<int32_t> blocks_;
};

}  // namespace longview
