#include "engine/cuda/pinned_page_arena.h"

#include <cuda_runtime.h>

#include "absl/strings/str_format.h"

namespace longview {

absl::StatusOr<std::shared_ptr<PageArena>> MakePinnedPageArena(int64_t block_bytes,
                                                               int64_t num_blocks) {
  if (block_bytes <= 0 || num_blocks <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "pinned page arena: %d blocks of %d bytes", num_blocks, block_bytes));
  }
  const size_t bytes = static_cast<size_t>(block_bytes) * static_cast<size_t>(num_blocks);
  void* slab = nullptr;
  if (cudaHostAlloc(&slab, bytes, cudaHostAllocPortable) != cudaSuccess) {
    (void)cudaGetLastError();
    return absl::ResourceExhaustedError(absl::StrFormat(
        "cannot pin %.2f GiB of host memory for the KV host tier (%d pages of %d bytes)",
        static_cast<double>(bytes) / (1ull << 30), num_blocks, block_bytes));
  }
  return PageArena::Create(block_bytes, num_blocks, slab, [](void* p) { (void)cudaFreeHost(p); },
                           "pinned");
}

}  // namespace longview
