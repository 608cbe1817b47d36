// The CUDA backend's device tier: KV pages (bf16 / fp16) and per-sequence state slots in GPU
// memory, implementing kvcache/kv_storage.h. Copies inside the pool run on the runner's stream
// (ordered with its forward); transfers to and from host memory complete before returning.
//
//   ASSIGN_OR_RETURN(auto kv, CudaKvStorage::Create(layout, /*elem_bytes=*/2, num_pages,
//                                                   /*num_state_slots=*/0, 0, stream));
//   RETURN_IF_ERROR(kv->CopyPages(plan.copies));
// Thread-safety: driven by the engine loop's thread.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

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
  absl::Status ReadPages(std::span<const int32_t> pages, std::span<std::byte> host) override;
  absl::Status WritePages(std::span<const int32_t> pages, std::span<const std::byte> host) override;
  absl::Status ClearStates(std::span<const int32_t> slots) override;

  // The pool's first page (the kernels address pages by index from here) and state memory.
  void* pages() const { return pages_; }
  void* states() const { return states_; }

 private:
  CudaKvStorage() = default;
  char* Page(int32_t page) const { return static_cast<char*>(pages_) + page * page_bytes(); }
  char* State(int32_t slot) const { return static_cast<char*>(states_) + slot * state_bytes_; }

  KvLayout layout_;
  int64_t elem_bytes_ = 2;
  int32_t num_pages_ = 0;
  int32_t num_state_slots_ = 0;
  int64_t state_bytes_ = 0;
  cudaStream_t stream_ = nullptr;
  void* pages_ = nullptr;
  void* states_ = nullptr;
};

}  // namespace longview
