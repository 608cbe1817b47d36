// KV pages in host memory (the CPU backend's page pool), float32, laid out per KvLayout, and the
// per-sequence state slots: the CPU implementation of KvStorage.
//
//   HostKvStorage kv(layout, /*num_pages=*/256);
//   float* k = kv.At(page, layer, KvLayout::kKey, slot, head);   // head_dim floats
// Thread-safety: distinct pages may be written concurrently; no internal locking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvcache/kv_layout.h"
#include "kvcache/kv_storage.h"

namespace longview {

class HostKvStorage final : public KvStorage {
 public:
  HostKvStorage(const KvLayout& layout, int32_t num_pages, int32_t num_state_slots = 0,
                int64_t state_bytes = 0);

  const KvLayout& layout() const override { return layout_; }
  int32_t num_pages() const override { return num_pages_; }
  int64_t page_bytes() const override {
    return layout_.PageElements() * static_cast<int64_t>(sizeof(float));
  }
  int32_t num_state_slots() const override { return num_state_slots_; }
  int64_t state_bytes() const override { return state_bytes_; }

  absl::Status CopyPages(std::span<const PageCopy> copies) override;
  absl::Status CopyStates(std::span<const StateCopy> copies) override;
  absl::Status CopySlots(std::span<const SlotCopy> copies) override;
  absl::Status ReadPages(std::span<const int32_t> pages, std::span<std::byte> host) override;
  absl::Status WritePages(std::span<const int32_t> pages, std::span<const std::byte> host) override;
  absl::Status ClearStates(std::span<const int32_t> slots) override;

  float* Page(int32_t page) { return data_.data() + page * layout_.PageElements(); }
  const float* Page(int32_t page) const { return data_.data() + page * layout_.PageElements(); }
  float* At(int32_t page, int64_t layer, int kv, int64_t slot, int64_t head) {
    return Page(page) + layout_.Offset(layer, kv, slot, head);
  }
  const float* At(int32_t page, int64_t layer, int kv, int64_t slot, int64_t head) const {
    return Page(page) + layout_.Offset(layer, kv, slot, head);
  }
  std::byte* State(int32_t slot) { return states_.data() + slot * state_bytes_; }

 private:
  KvLayout layout_;
  int32_t num_pages_;
  int32_t num_state_slots_;
  int64_t state_bytes_;
  std::vector<float> data_;
  std::vector<std::byte> states_;
};

}  // namespace longview
