// CRC32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78) for the checksums of KV pages
// held in host memory and on disk. On x86-64 with SSE4.2 (checked once at run time) it runs the
// `crc32` instruction on three interleaved streams, else a portable slicing-by-8 table loop; both
// give the same value.
//
//   uint32_t c = Crc32c(data.data(), data.size());
//   c = Crc32cExtend(c, more.data(), more.size());   // == Crc32c(data ++ more)
//
// Thread-safety: pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace longview {

// Continues a finished CRC32C `crc` of earlier bytes (0 for none) over `n` more bytes.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

namespace crc32c_internal {
// The two implementations, exposed so tests can compare them and benchmarks time them.
uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n);
// REQUIRES: HasHardwareCrc32c().
uint32_t ExtendHardware(uint32_t crc, const void* data, size_t n);
bool HasHardwareCrc32c();
}  // namespace crc32c_internal

}  // namespace longview
