#include "kvcache/page_bytes.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace longview {

PageBytes PageBytes::Allocate(size_t size, PageArena* arena) {
  PageBytes b;
  b.size_ = size;
  if (size == 0) return b;
  if (arena != nullptr) {
    std::byte* block =
        static_cast<int64_t>(size) == arena->block_bytes() ? arena->Take() : nullptr;
    if (block != nullptr) {
      b.data_ = std::shared_ptr<std::byte[]>(
          block, [owner = arena->shared_from_this()](std::byte* p) { owner->Give(p); });
      b.from_arena_ = true;
      return b;
    }
    std::lock_guard<std::mutex> lock(arena->mu_);
    ++arena->heap_fallbacks_;
  }
  b.data_ = std::shared_ptr<std::byte[]>(new std::byte[size]);
  return b;
}

PageBytes PageBytes::Copy(std::span<const std::byte> bytes, PageArena* arena) {
  PageBytes b = Allocate(bytes.size(), arena);
  if (!bytes.empty()) std::memcpy(b.mutable_data(), bytes.data(), bytes.size());
  return b;
}

bool operator==(const PageBytes& a, const PageBytes& b) {
  return a.size_ == b.size_ &&
         (a.data_ == b.data_ || a.size_ == 0 || std::memcmp(a.data(), b.data(), a.size_) == 0);
}

std::shared_ptr<PageArena> PageArena::Create(int64_t block_bytes, int64_t num_blocks, void* slab,
                                             std::function<void(void*)> release,
                                             const char* kind) {
  std::shared_ptr<PageArena> a(new PageArena());
  a->block_bytes_ = block_bytes > 0 && slab != nullptr ? block_bytes : 0;
  a->num_blocks_ = a->block_bytes_ > 0 ? std::max<int64_t>(num_blocks, 0) : 0;
  a->slab_ = static_cast<std::byte*>(slab);
  a->release_ = std::move(release);
  a->kind_ = kind;
  a->free_.reserve(static_cast<size_t>(a->num_blocks_));
  for (int64_t i = a->num_blocks_ - 1; i >= 0; --i) a->free_.push_back(i);
  return a;
}

std::shared_ptr<PageArena> PageArena::CreateOnHeap(int64_t block_bytes, int64_t num_blocks) {
  void* slab = block_bytes > 0 && num_blocks > 0
                   ? std::malloc(static_cast<size_t>(block_bytes * num_blocks))
                   : nullptr;
  return Create(block_bytes, slab != nullptr ? num_blocks : 0, slab, [](void* p) { std::free(p); },
                "heap");
}

PageArena::~PageArena() {
  if (slab_ != nullptr && release_) release_(slab_);
}

int64_t PageArena::blocks_in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return num_blocks_ - static_cast<int64_t>(free_.size());
}

int64_t PageArena::heap_fallbacks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return heap_fallbacks_;
}

std::byte* PageArena::Take() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.empty()) return nullptr;
  const int64_t i = free_.back();
  free_.pop_back();
  return slab_ + i * block_bytes_;
}

void PageArena::Give(std::byte* block) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back((block - slab_) / block_bytes_);
}

}  // namespace longview
