// Per-step metadata of the CUDA runner (engine/cuda internal): every small array a step's kernels
// read (token ids, slots, positions, block tables, lengths, windows, sampling parameters), packed
// into one pinned host buffer and copied to one device buffer with a single cudaMemcpyAsync.
// The offsets depend only on the array sizes, so a CUDA graph captured for one set of sizes keeps
// reading the right places when a later step with the same sizes rewrites the buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace longview::cuda_internal {

class MetaArena {
 public:
  // Starts a new layout (offsets from 0).
  void Reset() { used_ = 0; }
  // Reserves `count` elements of T (16-byte aligned) and returns the offset in bytes.
  template <typename T>
  size_t Reserve(size_t count) {
    used_ = (used_ + 15) & ~static_cast<size_t>(15);
    const size_t off = used_;
    used_ += count * sizeof(T);
    return off;
  }
  size_t used() const { return used_; }

 private:
  size_t used_ = 0;
};

}  // namespace longview::cuda_internal
