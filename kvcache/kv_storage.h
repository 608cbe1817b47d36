// The memory of one tier's KV pages and per-sequence state slots, as a backend owns it: the CPU
// backend's host pages (HostKvStorage) and the CUDA backend's GPU pool both implement this, so
// the cache manager's plans (page copies for copy-on-write, state copies on fork) and, later, the
// tiered store (moving whole pages between tiers) work the same on both.
//
// A page holds `layout().page_size` tokens of K and V for every layer, contiguous
// ([layer][k|v][token][kv_head][head_dim], kvcache/kv_layout.h), `page_bytes()` bytes in the
// storage's element type; a state slot holds `state_bytes()` bytes of a sequence's mode state
// (HiP masks, Lizard's recurrent state, ...). Both are addressed by index.
//
//   KvStorage& kv = runner.kv_storage();
//   RETURN_IF_ERROR(kv.CopyPages(plan.copies));
//   std::vector<std::byte> page(kv.page_bytes());
//   RETURN_IF_ERROR(kv.ReadPages(ids, page));       // to host memory (a tier move)
// Thread-safety: driven by the engine loop's thread, like the runner that owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"
#include "kvcache/kv_layout.h"

namespace longview {

struct PageCopy {
  int32_t src_page = 0;
  int32_t dst_page = 0;
  bool operator==(const PageCopy&) const = default;
};

// One token's K and V in every layer, from a slot of one page to a slot of another (or the same):
// KV policies compact the tokens they keep (kvcache/kv_policy.h).
struct SlotCopy {
  int32_t src_page = 0;
  int32_t src_slot = 0;
  int32_t dst_page = 0;
  int32_t dst_slot = 0;
  bool operator==(const SlotCopy&) const = default;
};

struct StateCopy {
  int32_t src_slot = 0;
  int32_t dst_slot = 0;
  bool operator==(const StateCopy&) const = default;
};

class KvStorage {
 public:
  virtual ~KvStorage() = default;

  virtual const KvLayout& layout() const = 0;
  virtual int32_t num_pages() const = 0;
  // Bytes of one page in the storage's element type (float32 on the CPU, bf16/fp16 on a GPU).
  virtual int64_t page_bytes() const = 0;
  virtual int32_t num_state_slots() const = 0;
  virtual int64_t state_bytes() const = 0;  // per slot; 0 when no mode keeps state

  // Copies pages (src -> dst, in order; a later copy may read an earlier one's destination).
  // InvalidArgument for an index out of range, naming it; nothing is copied then.
  virtual absl::Status CopyPages(std::span<const PageCopy> copies) = 0;
  virtual absl::Status CopyStates(std::span<const StateCopy> copies) = 0;
  // Copies token slots, in order (a later copy may read an earlier one's destination).
  // InvalidArgument for a page or slot out of range, naming it; nothing is copied then.
  virtual absl::Status CopySlots(std::span<const SlotCopy> copies) = 0;
  // Copies whole pages to / from host memory: `host` holds pages.size() * page_bytes() bytes,
  // page i at i * page_bytes(). Complete when the call returns. InvalidArgument for an index out
  // of range or a buffer of the wrong size.
  virtual absl::Status ReadPages(std::span<const int32_t> pages, std::span<std::byte> host) = 0;
  virtual absl::Status WritePages(std::span<const int32_t> pages,
                                  std::span<const std::byte> host) = 0;
  // Zeroes state slots (a sequence starting afresh, or reset after preemption).
  virtual absl::Status ClearStates(std::span<const int32_t> slots) = 0;

  // Asynchronous page moves between the device and host memory (the tiers' demotions and
  // promotions): page i moves to or from host[i] (page_bytes() each), which must stay valid and
  // untouched until the transfer is complete (TransferDone / WaitTransfer). Ordered with the
  // storage's compute work both ways without blocking the caller: a read sees every forward
  // issued before it, and work issued after a transfer does not touch the device pages until the
  // transfer has finished. The base implementation is synchronous (complete on return); the CUDA
  // storage copies on its own stream, at full speed from pinned memory (PageArena blocks).
  // InvalidArgument as ReadPages / WritePages; nothing is started then.
  // A read with `fence_compute` false leaves later compute free to run beside it (write-back of
  // full pages that nothing writes); before work that overwrites one of its pages, call
  // FenceTransfer.
  using TransferId = int64_t;
  virtual absl::StatusOr<TransferId> StartReadPages(std::span<const int32_t> pages,
                                                    std::span<std::byte* const> host,
                                                    bool fence_compute = true);
  virtual absl::StatusOr<TransferId> StartWritePages(std::span<const int32_t> pages,
                                                     std::span<const std::byte* const> host);
  // Whether the transfer has finished (true for an unknown or already finished id). Not blocking.
  virtual bool TransferDone(TransferId id);
  // Blocks until the transfer has finished; an error if the device failed meanwhile.
  virtual absl::Status WaitTransfer(TransferId id);
  // Compute issued from now on waits (on the device, not here) for the transfer to finish.
  virtual absl::Status FenceTransfer(TransferId id);
};

// Checks shared by the implementations: every copy's indices in [0, count), and a host buffer of
// pages.size() * unit bytes with every page index in range.
absl::Status CheckCopies(std::span<const PageCopy> copies, int32_t count);
absl::Status CheckCopies(std::span<const StateCopy> copies, int32_t count);
absl::Status CheckCopies(std::span<const SlotCopy> copies, int32_t num_pages, int64_t page_size);
absl::Status CheckTransfer(std::span<const int32_t> indices, int32_t count, size_t host_bytes,
                           int64_t unit_bytes);
// The same for per-page host buffers: as many buffers as pages, none null.
absl::Status CheckPageTransfer(std::span<const int32_t> pages, int32_t count, size_t num_buffers,
                               bool any_null);

}  // namespace longview
