// Owner of KV block ids: reference counts and a free list kept in eviction order (the block
// freed longest ago is reused first), as vLLM's block pool and nano-vllm's block manager.
//
//   BlockPool pool(/*num_blocks=*/1024);
//   if (pool.CanAllocate(3)) { std::vector<int32_t> ids = *pool.Allocate(3); ... pool.Free(ids); }
// Running out of blocks is a normal result: Allocate returns std::nullopt and changes nothing.
// Thread-safety: not thread-safe; owned by the engine loop.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "common/status.h"

namespace longview {

class BlockPool {
 public:
  explicit BlockPool(int32_t num_blocks);

  int32_t num_blocks() const { return static_cast<int32_t>(ref_counts_.size()); }
  int32_t NumFree() const { return static_cast<int32_t>(free_.size()); }
  bool CanAllocate(int32_t n) const { return n >= 0 && n <= NumFree(); }

  // Takes n blocks from the head of the free list, each with reference count 1; all or nothing.
  [[nodiscard]] std::optional<std::vector<int32_t>> Allocate(int32_t n);
  // Adds a reference (a second sequence sharing the block). FailedPrecondition for a free or
  // unknown block.
  [[nodiscard]] absl::Status AddRef(int32_t block_id);
  // Drops one reference per id; a block reaching zero goes to the tail of the free list.
  // FailedPrecondition, before changing anything, when an id is not allocated.
  [[nodiscard]] absl::Status Free(std::span<const int32_t> block_ids);
  int32_t RefCount(int32_t block_id) const { return ref_counts_.at(block_id); }

 private:
  std::vector<int32_t> ref_counts_;
  std::deque<int32_t> free_;
};

}  // namespace longview
