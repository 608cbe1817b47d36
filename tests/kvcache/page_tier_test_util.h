// Pages for the page tier tests (host_page_tier_test.cc, rocksdb_page_tier_test.cc and the kill
// -9 writer, disk_tier_kill_child.cc): contents are a function of the hash, so a page read back
// can be checked against the one written without keeping it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvcache/kv_page_tier.h"

namespace longview::testing_pages {

inline uint64_t Mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Page `hash` of the given geometry; `salt` changes the contents (same hash, other bytes).
inline PageRecord MakePage(uint64_t hash, int64_t page_size, int64_t page_bytes,
                           uint64_t salt = 0) {
  PageRecord p;
  p.hash = hash;
  p.parent_hash = Mix(hash ^ 0xABCD);
  p.tokens.resize(page_size);
  for (int64_t i = 0; i < page_size; ++i) p.tokens[i] = static_cast<int32_t>(Mix(hash + i) % 50000);
  p.bytes = PageBytes::Allocate(static_cast<size_t>(page_bytes));
  std::byte* out = p.bytes.mutable_data();
  uint64_t x = Mix(hash * 31 + salt);
  for (int64_t i = 0; i < page_bytes; i += 8) {
    x = Mix(x);
    for (int64_t j = 0; j < 8 && i + j < page_bytes; ++j) {
      out[i + j] = static_cast<std::byte>(x >> (8 * j));
    }
  }
  return p;
}

inline bool SamePage(const PageRecord& a, const PageRecord& b) {
  return a.hash == b.hash && a.parent_hash == b.parent_hash && a.tokens == b.tokens &&
         a.bytes == b.bytes;
}

}  // namespace longview::testing_pages
