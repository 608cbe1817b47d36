#include "kvcache/internal/page_format.h"

#include <algorithm>
#include <thread>
#include <vector>

#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"

namespace longview::page_format {
namespace {

// Tokens and header fields are stored little-endian by copying memory.
static_assert(std::endian::native == std::endian::little, "page formats assume little-endian");

constexpr size_t kCrcOffset = 48;

template <typename T>
void Put(std::string& out, size_t offset, T v) {
  std::memcpy(out.data() + offset, &v, sizeof(v));
}

template <typename T>
T Get(std::string_view in, size_t offset) {
  T v;
  std::memcpy(&v, in.data() + offset, sizeof(v));
  return v;
}

}  // namespace

uint32_t PageChecksum(const PageRecord& page) {
  const uint64_t hashes[2] = {page.hash, page.parent_hash};
  uint32_t crc = Crc32c(hashes, sizeof(hashes));
  crc = Crc32cExtend(crc, page.tokens.data(), page.tokens.size() * sizeof(int32_t));
  return Crc32cExtend(crc, page.bytes.data(), page.bytes.size());
}

void PageChecksums(std::span<const PageRecord* const> pages, std::span<uint32_t> crcs,
                   int max_threads) {
  int64_t bytes = 0;
  for (const PageRecord* p : pages) bytes += p != nullptr ? static_cast<int64_t>(p->bytes.size()) : 0;
  const int64_t threads = std::min<int64_t>(
      {std::max(max_threads, 1), std::max<int64_t>(1, std::thread::hardware_concurrency()),
       bytes / (32ll << 20) + 1, std::max<int64_t>(1, static_cast<int64_t>(pages.size()))});
  auto run = [&](int64_t t) {
    for (size_t i = t; i < pages.size(); i += threads) {
      if (pages[i] != nullptr) crcs[i] = PageChecksum(*pages[i]);
    }
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(run, t);
  run(0);
  for (std::thread& th : pool) th.join();
}

bool IsWellFormed(const PageRecord& page, int64_t page_size, int64_t page_bytes) {
  return static_cast<int64_t>(page.tokens.size()) == page_size &&
         static_cast<int64_t>(page.bytes.size()) == page_bytes;
}

std::string DiskKey(uint64_t namespace_key, uint64_t hash) {
  std::string key(kDiskKeyBytes, '\0');
  Put(key, 0, __builtin_bswap64(namespace_key));
  Put(key, 8, __builtin_bswap64(hash));
  return key;
}

uint64_t HashOfDiskKey(std::string_view key) { return __builtin_bswap64(Get<uint64_t>(key, 8)); }

std::string DiskHeader(const PageRecord& page, uint64_t sequence) {
  std::string h(kDiskHeaderBytes, '\0');
  Put(h, 0, kDiskMagic);
  Put(h, 4, kDiskFormatVersion);
  Put(h, 6, static_cast<uint16_t>(kDiskHeaderBytes));
  Put(h, 8, static_cast<uint32_t>(page.tokens.size()));
  Put(h, 16, static_cast<uint64_t>(page.bytes.size()));
  Put(h, 24, page.hash);
  Put(h, 32, page.parent_hash);
  Put(h, 40, sequence);
  uint32_t crc = Crc32c(h.data(), kCrcOffset);
  crc = Crc32cExtend(crc, page.tokens.data(), page.tokens.size() * sizeof(int32_t));
  crc = Crc32cExtend(crc, page.bytes.data(), page.bytes.size());
  Put(h, kCrcOffset, crc);
  return h;
}

absl::StatusOr<PageRecord> DecodeDiskValue(std::string_view value, uint64_t hash, int64_t page_size,
                                           int64_t page_bytes, PageArena* arena) {
  const int64_t want = DiskValueBytes(page_size, page_bytes);
  if (static_cast<int64_t>(value.size()) != want) {
    return absl::DataLossError(
        absl::StrCat("stored page ", hash, " has ", value.size(), " bytes, expected ", want));
  }
  if (Get<uint32_t>(value, 0) != kDiskMagic) {
    return absl::DataLossError(absl::StrCat("stored page ", hash, ": bad magic"));
  }
  if (Get<uint16_t>(value, 4) != kDiskFormatVersion ||
      Get<uint16_t>(value, 6) != kDiskHeaderBytes) {
    return absl::DataLossError(absl::StrCat("stored page ", hash, ": format version ",
                                            Get<uint16_t>(value, 4), ", expected ",
                                            kDiskFormatVersion));
  }
  if (Get<uint32_t>(value, 8) != page_size || Get<uint64_t>(value, 16) != uint64_t(page_bytes)) {
    return absl::DataLossError(
        absl::StrCat("stored page ", hash, ": geometry ", Get<uint32_t>(value, 8), " tokens / ",
                     Get<uint64_t>(value, 16), " bytes, expected ", page_size, " / ", page_bytes));
  }
  if (Get<uint64_t>(value, 24) != hash) {
    return absl::DataLossError(
        absl::StrCat("stored page ", hash, " holds page ", Get<uint64_t>(value, 24)));
  }
  uint32_t crc = Crc32c(value.data(), kCrcOffset);
  crc = Crc32cExtend(crc, value.data() + kDiskHeaderBytes, value.size() - kDiskHeaderBytes);
  if (crc != Get<uint32_t>(value, kCrcOffset)) {
    return absl::DataLossError(absl::StrCat("stored page ", hash, ": checksum mismatch"));
  }
  PageRecord page;
  page.hash = hash;
  page.parent_hash = Get<uint64_t>(value, 32);
  page.tokens.resize(page_size);  // memcpy: the value may not be 4-byte aligned
  std::memcpy(page.tokens.data(), value.data() + kDiskHeaderBytes, page_size * sizeof(int32_t));
  // assign, not resize + memcpy: one pass over the page instead of zeroing it first.
  const auto* bytes =
      reinterpret_cast<const std::byte*>(value.data() + kDiskHeaderBytes) + page_size * 4;
  page.bytes = PageBytes::Copy({bytes, static_cast<size_t>(page_bytes)}, arena);
  return page;
}

std::string EncodeIndexValue(const IndexValue& v) {
  std::string out(kIndexValueBytes, '\0');
  Put(out, 0, v.sequence);
  Put(out, 8, v.stored_bytes);
  return out;
}

bool DecodeIndexValue(std::string_view value, IndexValue* out) {
  if (value.size() != kIndexValueBytes) return false;
  out->sequence = Get<uint64_t>(value, 0);
  out->stored_bytes = Get<uint64_t>(value, 8);
  return true;
}

}  // namespace longview::page_format

namespace longview {
uint32_t PageChecksumOf(const PageRecord& page) { return page_format::PageChecksum(page); }
}  // namespace longview
