// KV pages in host memory (the CPU backend's page pool), float32, laid out per KvLayout.
//
//   HostKvStorage kv(layout, /*num_pages=*/256);
//   float* k = kv.At(page, layer, KvLayout::kKey, slot, head);   // head_dim floats
// Thread-safety: distinct pages may be written concurrently; no internal locking.
#pragma once

#include <cstdint>
#include <vector>

#include "kvcache/kv_layout.h"

namespace longview {

class HostKvStorage {
 public:
  HostKvStorage(const KvLayout& layout, int32_t num_pages)
      : layout_(layout), num_pages_(num_pages), data_(layout.PageElements() * num_pages) {}

  const KvLayout& layout() const { return layout_; }
  int32_t num_pages() const { return num_pages_; }
  float* Page(int32_t page) { return data_.data() + page * layout_.PageElements(); }
  const float* Page(int32_t page) const { return data_.data() + page * layout_.PageElements(); }
  float* At(int32_t page, int64_t layer, int kv, int64_t slot, int64_t head) {
    return Page(page) + layout_.Offset(layer, kv, slot, head);
  }
  const float* At(int32_t page, int64_t layer, int kv, int64_t slot, int64_t head) const {
    return Page(page) + layout_.Offset(layer, kv, slot, head);
  }

 private:
  KvLayout layout_;
  int32_t num_pages_;
  std::vector<float> data_;
};

}  // namespace longview
