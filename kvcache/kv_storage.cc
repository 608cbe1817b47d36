#include "kvcache/kv_storage.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace longview {

absl::Status CheckCopies(std::span<const PageCopy> copies, int32_t count) {
  for (const PageCopy& c : copies) {
    if (c.src_page < 0 || c.src_page >= count || c.dst_page < 0 || c.dst_page >= count) {
      return absl::InvalidArgumentError(absl::StrFormat("page copy %d -> %d out of range [0, %d)",
                                                        c.src_page, c.dst_page, count));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckCopies(std::span<const StateCopy> copies, int32_t count) {
  for (const StateCopy& c : copies) {
    if (c.src_slot < 0 || c.src_slot >= count || c.dst_slot < 0 || c.dst_slot >= count) {
      return absl::InvalidArgumentError(absl::StrFormat("state copy %d -> %d out of range [0, %d)",
                                                        c.src_slot, c.dst_slot, count));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckCopies(std::span<const SlotCopy> copies, int32_t num_pages, int64_t page_size) {
  for (const SlotCopy& c : copies) {
    if (c.src_page < 0 || c.src_page >= num_pages || c.dst_page < 0 || c.dst_page >= num_pages ||
        c.src_slot < 0 || c.src_slot >= page_size || c.dst_slot < 0 || c.dst_slot >= page_size) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "slot copy (page %d, slot %d) -> (page %d, slot %d) out of range (%d pages of %d slots)",
          c.src_page, c.src_slot, c.dst_page, c.dst_slot, num_pages, page_size));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTransfer(std::span<const int32_t> indices, int32_t count, size_t host_bytes,
                           int64_t unit_bytes) {
  if (host_bytes != indices.size() * static_cast<size_t>(unit_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("host buffer of %d bytes for %d pages of %d bytes", host_bytes,
                        indices.size(), unit_bytes));
  }
  for (int32_t i : indices) {
    if (i < 0 || i >= count) {
      return absl::InvalidArgumentError(absl::StrFormat("page %d out of range [0, %d)", i, count));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPageTransfer(std::span<const int32_t> pages, int32_t count, size_t num_buffers,
                               bool any_null) {
  if (num_buffers != pages.size() || any_null) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d host buffers for %d pages%s", num_buffers, pages.size(), any_null ? " (one null)" : ""));
  }
  return CheckTransfer(pages, count, 0, 0);
}

namespace {

// The base implementation of both directions: checks, then one synchronous move per page
// (`move(page_index, host_buffer_index)`); complete on return.
template <typename Ptr, typename Move>
absl::StatusOr<KvStorage::TransferId> MovePageByPage(const KvStorage& kv,
                                                     std::span<const int32_t> pages,
                                                     std::span<Ptr const> host, Move move) {
  RETURN_IF_ERROR(CheckPageTransfer(pages, kv.num_pages(), host.size(),
                                    std::find(host.begin(), host.end(), nullptr) != host.end()));
  for (size_t i = 0; i < pages.size(); ++i) RETURN_IF_ERROR(move(pages.subspan(i, 1), host[i]));
  return KvStorage::TransferId{0};
}

}  // namespace

absl::StatusOr<KvStorage::TransferId> KvStorage::StartReadPages(std::span<const int32_t> pages,
                                                                std::span<std::byte* const> host,
                                                                bool /*fence_compute*/) {
  return MovePageByPage(*this, pages, host, [&](std::span<const int32_t> page, std::byte* to) {
    return ReadPages(page, {to, static_cast<size_t>(page_bytes())});
  });
}

absl::StatusOr<KvStorage::TransferId> KvStorage::StartWritePages(
    std::span<const int32_t> pages, std::span<const std::byte* const> host) {
  return MovePageByPage(*this, pages, host,
                        [&](std::span<const int32_t> page, const std::byte* from) {
                          return WritePages(page, {from, static_cast<size_t>(page_bytes())});
                        });
}

bool KvStorage::TransferDone(TransferId) { return true; }

absl::Status KvStorage::WaitTransfer(TransferId) { return absl::OkStatus(); }

absl::Status KvStorage::FenceTransfer(TransferId) { return absl::OkStatus(); }

}  // namespace longview
