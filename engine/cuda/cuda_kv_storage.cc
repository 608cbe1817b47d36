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
  if (copy_stream_ != nullptr) {
    (void)cudaStreamSynchronize(copy_stream_);
    (void)cudaStreamDestroy(copy_stream_);
  }
  for (auto& [id, event] : transfers_) free_events_.push_back(event);
  for (cudaEvent_t e : free_events_) (void)cudaEventDestroy(e);
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

absl::Status CudaKvStorage::CopySlots(std::span<const SlotCopy> copies) {
  RETURN_IF_ERROR(CheckCopies(copies, num_pages_, layout_.page_size));
  // A slot is one row of TokenStride() elements in each of the page's 2 * layers planes.
  const size_t width = static_cast<size_t>(layout_.TokenStride() * elem_bytes_);
  const size_t pitch = static_cast<size_t>(layout_.KvStride() * elem_bytes_);
  const size_t planes = static_cast<size_t>(2 * layout_.num_layers);
  for (const SlotCopy& c : copies) {
    RETURN_IF_ERROR(CudaStatus(
        cudaMemcpy2DAsync(Page(c.dst_page) + c.dst_slot * width, pitch,
                          Page(c.src_page) + c.src_slot * width, pitch, width, planes,
                          cudaMemcpyDeviceToDevice, stream_),
        "slot copy"));
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

absl::StatusOr<cudaEvent_t> CudaKvStorage::TakeEvent() {
  if (!free_events_.empty()) {
    cudaEvent_t e = free_events_.back();
    free_events_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  RETURN_IF_ERROR(CudaStatus(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event"));
  return e;
}

absl::StatusOr<KvStorage::TransferId> CudaKvStorage::StartTransfer(
    std::span<const int32_t> pages, std::span<std::byte* const> host, bool to_host,
    bool fence_compute) {
  RETURN_IF_ERROR(CheckPageTransfer(pages, num_pages_, host.size(),
                                    std::find(host.begin(), host.end(), nullptr) != host.end()));
  const char* what = to_host ? "page read (async)" : "page write (async)";
  if (copy_stream_ == nullptr) {
    RETURN_IF_ERROR(
        CudaStatus(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking), what));
  }
  // The copies start after the compute work issued so far (a read sees the last forward's
  // writes; a write does not race a forward still reading the page's old owner) ...
  ASSIGN_OR_RETURN(cudaEvent_t before, TakeEvent());
  RETURN_IF_ERROR(CudaStatus(cudaEventRecord(before, stream_), what));
  RETURN_IF_ERROR(CudaStatus(cudaStreamWaitEvent(copy_stream_, before, 0), what));
  free_events_.push_back(before);  // a later record does not change the wait enqueued above
  for (size_t i = 0; i < pages.size(); ++i) {
    void* dst = to_host ? static_cast<void*>(host[i]) : Page(pages[i]);
    const void* src = to_host ? static_cast<const void*>(Page(pages[i])) : host[i];
    RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(dst, src, page_bytes(),
                        to_host ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice, copy_stream_),
        what));
  }
  // ... and compute issued from now on waits for them (on the GPU, not here), unless the caller
  // fences later (write-back of pages nothing writes).
  ASSIGN_OR_RETURN(cudaEvent_t after, TakeEvent());
  RETURN_IF_ERROR(CudaStatus(cudaEventRecord(after, copy_stream_), what));
  if (fence_compute) RETURN_IF_ERROR(CudaStatus(cudaStreamWaitEvent(stream_, after, 0), what));
  const TransferId id = next_transfer_++;
  transfers_.emplace(id, after);
  return id;
}

absl::StatusOr<KvStorage::TransferId> CudaKvStorage::StartReadPages(
    std::span<const int32_t> pages, std::span<std::byte* const> host, bool fence_compute) {
  return StartTransfer(pages, host, /*to_host=*/true, fence_compute);
}

absl::StatusOr<KvStorage::TransferId> CudaKvStorage::StartWritePages(
    std::span<const int32_t> pages, std::span<const std::byte* const> host) {
  // The buffers are only read (host-to-device); one signature serves both directions.
  std::vector<std::byte*> src(host.size());
  for (size_t i = 0; i < host.size(); ++i) src[i] = const_cast<std::byte*>(host[i]);
  return StartTransfer(pages, src, /*to_host=*/false, /*fence_compute=*/true);
}

absl::Status CudaKvStorage::FenceTransfer(TransferId id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return absl::OkStatus();  // finished and collected
  return CudaStatus(cudaStreamWaitEvent(stream_, it->second, 0), "page transfer fence");
}

bool CudaKvStorage::TransferDone(TransferId id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return true;
  const cudaError_t e = cudaEventQuery(it->second);
  if (e == cudaErrorNotReady) return false;
  if (e != cudaSuccess) return true;  // WaitTransfer reports the error; keep the event out
  free_events_.push_back(it->second);
  transfers_.erase(it);
  return true;
}

absl::Status CudaKvStorage::WaitTransfer(TransferId id) {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return absl::OkStatus();
  const cudaEvent_t event = it->second;
  transfers_.erase(it);
  RETURN_IF_ERROR(CudaStatus(cudaEventSynchronize(event), "page transfer"));
  free_events_.push_back(event);
  return absl::OkStatus();
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
