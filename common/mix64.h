// SplitMix64's finalizer: a cheap 64-bit mix, the step of the prefix cache's chained block hashes
// (kvcache/kv_cache_manager.cc) and of input embeddings' row keys (engine/runner/input_embeddings.cc).
#pragma once

#include <cstdint>

namespace longview {

inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace longview
