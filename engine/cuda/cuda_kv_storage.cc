#include "engine/cuda/cuda_kv_storage.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "kernels/cuda/status.h"

namespace longview {

using cuda::CudaStatus;

absl::StatusOr<std::unique_ptr<CudaKvStorage>> CudaKvStorage::Create(
    const KvLayout& layout, int64_t elem_bytes, int32_t num_pages, int32_t num_state_slots,
    int64_t state_bytes, cudaStream_t stream) {
  if (num_pages < 0 || num_state_slots < 0 || state_bytes < 0 || elem_bytes < 1) {
    return absl::InvalidArgumentError("CudaKvStorage: negative size");
  }
  auto kv = std::unique_ptr<CudaKvStorage>(new CudaKvStorage());
  kv->layout_ = layout;
  kv->elem_bytes_ = elem_bytes;
  kv->num_pages_ = num_pages;
  kv->num_state_slots_ = num_state_slots;
  kv->state_bytes_ = state_bytes;
  kv->stream_ = stream;
  const size_t page_pool = static_cast<size_t>(num_pages) * kv->page_bytes();
  if (cudaMalloc(&kv->pages_, std::max<size_t>(page_pool, 16)) != cudaSuccess) {
    (void)cudaGetLastError();
    return absl::ResourceExhaustedError(
        absl::StrFormat("cannot allocate %d KV pages (%.2f GiB) on the GPU", num_pages,
                        static_cast<double>(page_pool) / (1 << 30)));
  }
  const size_t state_pool = static_cast<size_t>(num_state_slots) * state_bytes;
  if (state_pool > 0 && cudaMalloc(&kv->states_, state_pool) != cudaSuccess) {
    (void)cudaGetLastError();
    return absl::ResourceExhaustedError(absl::StrFormat(
        "cannot allocate %d state slots of %d bytes on the GPU", num_state_slots, state_bytes));
  }
  return kv;
}

CudaKvStorage::~CudaKvStorage() {
  if (pages_ != nullptr) cudaFree(pages_);
  if (states_ != nullptr) cudaFree(states_);
}

absl::Status CudaKvStorage::CopyPages(std::span<const PageCopy> copies) {
  RETURN_IF_ERROR(CheckCopies(copies, num_pages_));
  for (const PageCopy& c : copies) {
    RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(Page(c.dst_page), Page(c.src_page), page_bytes(),
                                               cudaMemcpyDeviceToDevice, stream_),
                               "page copy"));
  }
  return absl::OkStatus();
}

absl::Status CudaKvStorage::CopyStates(std::span<const StateCopy> copies) {
  RETURN_IF_ERROR(CheckCopies(copies, num_state_slots_));
  for (const StateCopy& c : copies) {
    RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(State(c.dst_slot), State(c.src_slot), state_bytes_,
                                               cudaMemcpyDeviceToDevice, stream_),
                               "state copy"));
  }
  return absl::OkStatus();
}

absl::Status CudaKvStorage::ReadPages(std::span<const int32_t> pages, std::span<std::byte> host) {
  RETURN_IF_ERROR(CheckTransfer(pages, num_pages_, host.size(), page_bytes()));
  for (size_t i = 0; i < pages.size(); ++i) {
    RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(host.data() + i * page_bytes(), Page(pages[i]),
                                               page_bytes(), cudaMemcpyDeviceToHost, stream_),
                               "page read"));
  }
  return CudaStatus(cudaStreamSynchronize(stream_), "page read");
}

absl::Status CudaKvStorage::WritePages(std::span<const int32_t> pages,
                                       std::span<const std::byte> host) {
  RETURN_IF_ERROR(CheckTransfer(pages, num_pages_, host.size(), page_bytes()));
  for (size_t i = 0; i < pages.size(); ++i) {
    RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(Page(pages[i]), host.data() + i * page_bytes(),
                                               page_bytes(), cudaMemcpyHostToDevice, stream_),
                               "page write"));
  }
  return CudaStatus(cudaStreamSynchronize(stream_), "page write");
}

absl::Status CudaKvStorage::ClearStates(std::span<const int32_t> slots) {
  for (int32_t s : slots) {
    if (s < 0 || s >= num_state_slots_) {
      return absl::InvalidArgumentError(
          absl::StrFormat("state slot %d out of range [0, %d)", s, num_state_slots_));
    }
  }
  for (int32_t s : slots) {
    RETURN_IF_ERROR(CudaStatus(cudaMemsetAsync(State(s), 0, state_bytes_, stream_), "state clear"));
  }
  return absl::OkStatus();
}

}  // namespace longview
