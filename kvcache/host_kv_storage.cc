#include "kvcache/host_kv_storage.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"

namespace longview {

HostKvStorage::HostKvStorage(const KvLayout& layout, int32_t num_pages, int32_t num_state_slots,
                             int64_t state_bytes)
    : layout_(layout),
      num_pages_(num_pages),
      num_state_slots_(num_state_slots),
      state_bytes_(state_bytes),
      data_(layout.PageElements() * num_pages),
      states_(static_cast<size_t>(num_state_slots) * state_bytes) {}

absl::Status HostKvStorage::CopyPages(std::span<const PageCopy> copies) {
  RETURN_IF_ERROR(CheckCopies(copies, num_pages_));
  for (const PageCopy& c : copies) {
    std::copy_n(Page(c.src_page), layout_.PageElements(), Page(c.dst_page));
  }
  return absl::OkStatus();
}

absl::Status HostKvStorage::CopySlots(std::span<const SlotCopy> copies) {
  RETURN_IF_ERROR(CheckCopies(copies, num_pages_, layout_.page_size));
  const int64_t n = layout_.TokenStride();
  for (const SlotCopy& c : copies) {
    for (int64_t l = 0; l < layout_.num_layers; ++l) {
      for (int kv : {KvLayout::kKey, KvLayout::kValue}) {
        std::memmove(Page(c.dst_page) + layout_.Offset(l, kv, c.dst_slot, 0),
                     Page(c.src_page) + layout_.Offset(l, kv, c.src_slot, 0), n * sizeof(float));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status HostKvStorage::CopyStates(std::span<const StateCopy> copies) {
  RETURN_IF_ERROR(CheckCopies(copies, num_state_slots_));
  for (const StateCopy& c : copies) {
    std::memmove(State(c.dst_slot), State(c.src_slot), state_bytes_);
  }
  return absl::OkStatus();
}

absl::Status HostKvStorage::ReadPages(std::span<const int32_t> pages, std::span<std::byte> host) {
  RETURN_IF_ERROR(CheckTransfer(pages, num_pages_, host.size(), page_bytes()));
  for (size_t i = 0; i < pages.size(); ++i) {
    std::memcpy(host.data() + i * page_bytes(), Page(pages[i]), page_bytes());
  }
  return absl::OkStatus();
}

absl::Status HostKvStorage::WritePages(std::span<const int32_t> pages,
                                       std::span<const std::byte> host) {
  RETURN_IF_ERROR(CheckTransfer(pages, num_pages_, host.size(), page_bytes()));
  for (size_t i = 0; i < pages.size(); ++i) {
    std::memcpy(Page(pages[i]), host.data() + i * page_bytes(), page_bytes());
  }
  return absl::OkStatus();
}

absl::Status HostKvStorage::ClearStates(std::span<const int32_t> slots) {
  for (int32_t s : slots) {
    if (s < 0 || s >= num_state_slots_) {
      return absl::InvalidArgumentError(
          absl::StrFormat("state slot %d out of range [0, %d)", s, num_state_slots_));
    }
  }
  for (int32_t s : slots) std::memset(State(s), 0, state_bytes_);
  return absl::OkStatus();
}

}  // namespace longview
