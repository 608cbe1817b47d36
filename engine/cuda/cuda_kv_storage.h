// The CUDA backend's device tier: KV pages (bf16 / fp16) and per-sequence state slots in GPU
// memory, implementing kvcache/kv_storage.h. Copies inside the pool run on the runner's stream
// (ordered with its forward); ReadPages / WritePages complete before returning, while
// StartReadPages / StartWritePages (the tiers' demotions and promotions) run on a copy stream of
// their own, ordered against the runner's stream by events in both directions, so the host
// never waits and copies overlap compute (at full speed when the host buffers are pinned:
// pinned_page_arena.h).
//
//   ASSIGN_OR_RETURN(auto kv, CudaKvStorage::Create(layout, /*elem_bytes=*/2, num_pages,
//                                                   /*num_state_slots=*/0, 0, stream));
//   RETURN_IF_ERROR(kv->CopyPages(plan.copies));
// Thread-safety: driven by the engine loop's thread.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "kvcache/kv_storage.h"

namespace longview {

class CudaKvStorage final : public KvStorage {
 public:
  // ResourceExhausted (naming the bytes) when the pool cannot be allocated.
  static absl::StatusOr<std::unique_ptr<CudaKvStorage>> Create(
      const KvLayout& layout, int64_t elem_bytes, int32_t num_pages, int32_t num_state_slots,
      int64_t state_bytes, cudaStream_t stream);
  ~CudaKvStorage() override;
  CudaKvStorage(const CudaKvStorage&) = delete;
  CudaKvStorage& operator=(const CudaKvStorage&) = delete;

  const KvLayout& layout() const override { return layout_; }
  int32_t num_pages() const override { return num_pages_; }
  int64_t page_bytes() const override { return layout_.PageElements() * elem_bytes_; }
  int32_t num_state_slots() const override { return num_state_slots_; }
  int64_t state_bytes() const override { return state_bytes_; }

  absl::Status CopyPages(std::span<const PageCopy> copies) override;
  absl::Status CopyStates(std::span<const StateCopy> copies) override;
  absl::Status CopySlots(std::span<const SlotCopy> copies) override;
  absl::Status ReadPages(std::span<const int32_t> pages, std::span<std::byte> host) override;
  absl::Status WritePages(std::span<const int32_t> pages, std::span<const std::byte> host) override;
  absl::Status ClearStates(std::span<const int32_t> slots) override;
  absl::StatusOr<TransferId> StartReadPages(std::span<const int32_t> pages,
                                            std::span<std::byte* const> host,
                                            bool fence_compute = true) override;
  absl::StatusOr<TransferId> StartWritePages(std::span<const int32_t> pages,
                                             std::span<const std::byte* const> host) override;
  bool TransferDone(TransferId id) override;
  absl::Status WaitTransfer(TransferId id) override;
  absl::Status FenceTransfer(TransferId id) override;

  // The pool's first page (the kernels address pages by index from here) and state memory.
  void* pages() const { return pages_; }
  void* states() const { return states_; }

 private:
  CudaKvStorage() = default;
  char* Page(int32_t page) const { return static_cast<char*>(pages_) + page * page_bytes(); }
  char* State(int32_t slot) const { return static_cast<char*>(states_) + slot * state_bytes_; }

  // Enqueues one page copy per page on copy_stream_ between two events (see the class comment).
  absl::StatusOr<TransferId> StartTransfer(std::span<const int32_t> pages,
                                           std::span<std::byte* const> host, bool to_host,
                                           bool fence_compute);
  absl::StatusOr<cudaEvent_t> TakeEvent();
  KvLayout layout_;
  int64_t elem_bytes_ = 2;
  int32_t num_pages_ = 0;
  int32_t num_state_slots_ = 0;
  int64_t state_bytes_ = 0;
  cudaStream_t stream_ = nullptr;
  void* pages_ = nullptr;
  void* states_ = nullptr;
  cudaStream_t copy_stream_ = nullptr;  // created at the first transfer
  std::vector<cudaEvent_t> free_events_;
  std::unordered_map<TransferId, cudaEvent_t> transfers_;  // id -> its completion event
  TransferId next_transfer_ = 1;
};

}  // namespace longview
