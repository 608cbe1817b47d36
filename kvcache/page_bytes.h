// The bytes of one KV page outside the device pool, shared rather than copied: a page demoted
// write-through sits in the host tier and in the disk tier's write queue as one buffer, and a
// staged page is the host tier's own buffer, not a copy of it. Buffers come from a PageArena
// (fixed-size blocks of one slab: pinned host memory on the CUDA backend, so device copies run
// asynchronously at full speed) or from the heap when there is no arena or it is full.
//
//   std::shared_ptr<PageArena> arena = PageArena::CreateOnHeap(page_bytes, 1024);
//   PageBytes b = PageBytes::Allocate(page_bytes, arena.get());  // writable, not shared yet
//   std::memcpy(b.mutable_data(), src, page_bytes);
//   PageRecord r{.hash = h, .bytes = b};                         // shares the buffer
//
// A buffer is written only by its creator, before it is shared (mutable_data); after that it
// is read-only, so sharing needs no locks. Blocks go back to their arena when the last
// PageBytes holding them is destroyed, on whatever thread that is.
// Thread-safety: PageBytes as std::shared_ptr (copies may live on different threads);
// PageArena's methods may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace longview {

class PageArena;

class PageBytes {
 public:
  PageBytes() = default;
  // `size` uninitialised bytes: a block of `arena` when it has one free of exactly this size,
  // else the heap.
  static PageBytes Allocate(size_t size, PageArena* arena = nullptr);
  static PageBytes Copy(std::span<const std::byte> bytes, PageArena* arena = nullptr);

  const std::byte* data() const { return data_.get(); }
  // For the creator, before the buffer is shared.
  std::byte* mutable_data() const { return data_.get(); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const std::byte> span() const { return {data_.get(), size_}; }
  const std::byte* begin() const { return data_.get(); }
  const std::byte* end() const { return data_.get() + size_; }
  // Whether the buffer is a block of an arena (pinned memory on the CUDA backend).
  bool from_arena() const { return from_arena_; }

  // Equal contents (not the same buffer).
  friend bool operator==(const PageBytes& a, const PageBytes& b);

 private:
  std::shared_ptr<std::byte[]> data_;
  size_t size_ = 0;
  bool from_arena_ = false;
};

// Fixed-size blocks carved from one slab. The slab is given (pinned memory from the CUDA
// backend, engine/cuda/pinned_page_arena.h) or taken from the heap.
class PageArena : public std::enable_shared_from_this<PageArena> {
 public:
  // `slab` holds block_bytes * num_blocks bytes; `release` frees it when the arena and every
  // block handed out are gone. `kind` names the memory in reports ("pinned", "heap").
  static std::shared_ptr<PageArena> Create(int64_t block_bytes, int64_t num_blocks, void* slab,
                                           std::function<void(void*)> release, const char* kind);
  static std::shared_ptr<PageArena> CreateOnHeap(int64_t block_bytes, int64_t num_blocks);
  ~PageArena();
  PageArena(const PageArena&) = delete;
  PageArena& operator=(const PageArena&) = delete;

  int64_t block_bytes() const { return block_bytes_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t slab_bytes() const { return block_bytes_ * num_blocks_; }
  const char* kind() const { return kind_; }
  int64_t blocks_in_use() const;
  // Allocations that found no free block (or the wrong size) and went to the heap.
  int64_t heap_fallbacks() const;

 private:
  friend class PageBytes;
  PageArena() = default;
  // A free block, or null (the caller falls back to the heap).
  std::byte* Take();
  void Give(std::byte* block);

  int64_t block_bytes_ = 0;
  int64_t num_blocks_ = 0;
  std::byte* slab_ = nullptr;
  std::function<void(void*)> release_;
  const char* kind_ = "heap";
  mutable std::mutex mu_;
  std::vector<int64_t> free_;  // block indices
  int64_t heap_fallbacks_ = 0;
};

}  // namespace longview
