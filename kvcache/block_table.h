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
  // Releases logical block `index` (a sliding window no longer reads it): returns its id and
  // leaves -1 in its place, so later positions keep their blocks. Returns -1 if already released.
  // REQUIRES: index < blocks().size().
  int32_t ReleaseBlock(int64_t index);
  // Blocks not released.
  int64_t NumResident() const { return static_cast<int64_t>(blocks_.size()) - num_released_; }
  // Removes and returns all blocks (for freeing); released ones (-1) are left out.
  std::vector<int32_t> Release();

 private:
  int64_t page_size_;
  std::vector<int32_t> blocks_;
  int64_t num_released_ = 0;
};

// Sliding-window release rule (DESIGN §4 sliding_window): the logical blocks [begin, end) that
// hold no sink token (the first `sinks` tokens) and no token the query at token index
// `next_token` or any later one can see under a window of `window` tokens (the query included).
// Such blocks can be freed before running `next_token`.
// REQUIRES: page_size >= 1, window >= 1, sinks >= 0.
struct BlockRange {
  int64_t begin = 0;
  int64_t end = 0;
};
BlockRange BlocksOutsideWindow(int64_t page_size, int64_t sinks, int64_t window,
                               int64_t next_token);

}  // namespace longview
