// How the page tiers (kv_page_tier.h) checksum and frame a PageRecord.
//
// Host tier: a record is kept as it came, with PageChecksum() beside it.
// Disk tier: key = namespace_key (8 bytes, big-endian) ++ hash (8 bytes, big-endian), so one
// namespace's pages are one contiguous key range; value = a kDiskHeaderBytes header, then the
// tokens (int32, little-endian), then the page bytes:
//
//   offset  size  field
//        0     4  magic 'LVKP' (kDiskMagic, little-endian)
//        4     2  format version (kDiskFormatVersion)
//        6     2  header bytes (kDiskHeaderBytes)
//        8     4  page_size (tokens)
//       12     4  reserved, 0
//       16     8  page_bytes
//       24     8  hash
//       32     8  parent hash
//       40     8  insertion sequence number (monotonic per database)
//       48     4  CRC32C over bytes [0, 48) of the header, then the tokens, then the page bytes
//       52     4  reserved, 0
// The index column family holds, under the same key, kIndexValueBytes: the page's recency
// sequence number and its stored size (both uint64 little-endian); see rocksdb_page_tier.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "kvcache/kv_page_tier.h"

namespace longview::page_format {

// CRC32C over hash and parent hash (8 bytes little-endian each), the tokens, then the bytes.
uint32_t PageChecksum(const PageRecord& page);

// PageChecksum of every non-null page into `crcs` (same length), on up to `max_threads` threads
// (fewer for a small batch: one per 32 MiB).
void PageChecksums(std::span<const PageRecord* const> pages, std::span<uint32_t> crcs,
                   int max_threads = 16);

// Whether `page` has exactly `page_size` tokens and `page_bytes` bytes.
bool IsWellFormed(const PageRecord& page, int64_t page_size, int64_t page_bytes);

inline constexpr uint32_t kDiskMagic = 0x504B564Cu;  // "LVKP" in little-endian byte order
inline constexpr uint16_t kDiskFormatVersion = 1;
inline constexpr size_t kDiskHeaderBytes = 56;
inline constexpr size_t kDiskKeyBytes = 16;
inline constexpr size_t kIndexValueBytes = 16;

// Header + tokens + bytes of one stored page.
inline int64_t DiskValueBytes(int64_t page_size, int64_t page_bytes) {
  return static_cast<int64_t>(kDiskHeaderBytes) + page_size * 4 + page_bytes;
}

std::string DiskKey(uint64_t namespace_key, uint64_t hash);
// The key's hash; REQUIRES key.size() == kDiskKeyBytes.
uint64_t HashOfDiskKey(std::string_view key);

// The header for `page`, its CRC computed over the header and the page.
// REQUIRES: IsWellFormed(page, page.tokens.size(), page.bytes.size()).
std::string DiskHeader(const PageRecord& page, uint64_t sequence);

// Parses and verifies a stored value: DataLoss naming what is wrong (size, magic, version,
// geometry, hash, checksum) unless it is the page `hash` of this geometry. The page's bytes go
// into a block of `arena` when it has a free one.
absl::StatusOr<PageRecord> DecodeDiskValue(std::string_view value, uint64_t hash, int64_t page_size,
                                           int64_t page_bytes, PageArena* arena = nullptr);

struct IndexValue {
  uint64_t sequence = 0;  // recency: higher is more recently inserted or read
  uint64_t stored_bytes = 0;
};
std::string EncodeIndexValue(const IndexValue& v);
// False when `value` is not kIndexValueBytes long.
bool DecodeIndexValue(std::string_view value, IndexValue* out);

}  // namespace longview::page_format
