// The host-memory page tier (kv_page_tier.h): an LRU list of whole pages, each with its CRC32C,
// verified whenever the page leaves (a lookup's copy, or a push down to the next tier).
#include <cstring>
#include <algorithm>
#include <list>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kvcache/internal/page_format.h"
#include "kvcache/internal/page_tier_testing.h"
#include "kvcache/kv_page_tier.h"

namespace longview {
namespace {

// Per held page beyond its tokens and bytes: the list node, the map slot, the checksum.
constexpr int64_t kHostEntryOverheadBytes = 64;

class HostPageTier final : public KvPageTier {
 public:
  explicit HostPageTier(const HostPageTierOptions& o) : options_(o) {
    stats_.capacity_bytes = o.capacity_bytes;
    entry_bytes_ = o.page_bytes + o.page_size * static_cast<int64_t>(sizeof(int32_t)) +
                   kHostEntryOverheadBytes;
  }

  const char* name() const override { return "host"; }

  InsertResult Insert(PageRecord page) override {
    InsertResult result;
    // Options that break the REQUIRES (page_size or page_bytes <= 0) leave every page malformed.
    if (options_.page_bytes <= 0 || options_.page_size <= 0 ||
        !page_format::IsWellFormed(page, options_.page_size, options_.page_bytes)) {
      ++stats_.declined_pages;
      return result;
    }
    if (index_.contains(page.hash)) {
      result.accepted = true;
      return result;
    }
    if (entry_bytes_ > options_.capacity_bytes) {
      ++stats_.declined_pages;
      return result;
    }
    while (stats_.bytes + entry_bytes_ > options_.capacity_bytes) {
      Entry& victim = lru_.back();
      ++stats_.evicted_pages;
      // Passed down unchecked, with the checksum it was stored with: the next tier checks it
      // off this thread (the disk tier's writer) or, holding the page already, drops it.
      victim.page.unchecked_crc = victim.crc;
      result.displaced.push_back(std::move(victim.page));
      Drop(std::prev(lru_.end()));
    }
    Store(std::move(page));
    ++stats_.inserted_pages;
    stats_.inserted_bytes += entry_bytes_;
    result.accepted = true;
    return result;
  }

  bool Contains(uint64_t hash) const override { return index_.contains(hash); }

  LookupHandle StartLookup(std::span<const uint64_t> hashes) override {
    // The checksums first, in parallel for a large batch (a 32k-token prompt of an 8B model is
    // 4 GiB: 0.2 s on one thread), then the lookups in order.
    std::vector<const PageRecord*> pages(hashes.size(), nullptr);
    std::vector<uint32_t> crcs(hashes.size(), 0);
    for (size_t i = 0; i < hashes.size(); ++i) {
      auto it = index_.find(hashes[i]);
      if (it == index_.end()) continue;
      pages[i] = &it->second->page;
      crcs[i] = it->second->crc;  // as stored: what an unchecked lookup passes on
    }
    if (options_.verify == HostPageTierOptions::Verify::kOnLookup) {
      page_format::PageChecksums(pages, crcs);
    }
    std::vector<absl::StatusOr<PageRecord>> out;
    out.reserve(hashes.size());
    for (size_t i = 0; i < hashes.size(); ++i) out.push_back(Lookup(hashes[i], crcs[i]));
    const LookupHandle handle = next_handle_++;
    done_.emplace(handle, std::move(out));
    return handle;
  }

  std::vector<absl::StatusOr<PageRecord>> Wait(LookupHandle handle) override {
    auto it = done_.find(handle);
    if (it == done_.end()) return {};  // unknown or already waited
    std::vector<absl::StatusOr<PageRecord>> out = std::move(it->second);
    done_.erase(it);
    return out;
  }

  void Erase(uint64_t hash) override {
    auto it = index_.find(hash);
    if (it != index_.end()) Drop(it->second);
  }

  PageTierStats stats() const override { return stats_; }

  bool Corrupt(uint64_t hash, size_t offset) {
    auto it = index_.find(hash);
    if (it == index_.end() || it->second->page.bytes.empty()) return false;
    // A private copy first: the buffer may be shared (the disk tier's write queue, a staged
    // page), and failing memory here would spoil only this tier's copy.
    PageBytes& bytes = it->second->page.bytes;
    bytes = PageBytes::Copy(bytes.span(), options_.arena.get());
    bytes.mutable_data()[offset % bytes.size()] ^= std::byte{0x10};
    return true;
  }

 private:
  struct Entry {
    PageRecord page;
    uint32_t crc = 0;
  };
  using EntryIt = std::list<Entry>::iterator;

  // The one place page memory is taken: the record's own buffer, shared (no copy), unless the
  // tier has an arena (pinned memory) and the buffer is not from it: then it is copied into a
  // free block, so that promotions from this tier copy to the device asynchronously.
  void Store(PageRecord page) {
    if (options_.arena != nullptr && !page.bytes.from_arena()) {
      PageBytes pinned = PageBytes::Allocate(page.bytes.size(), options_.arena.get());
      if (pinned.from_arena()) {
        std::memcpy(pinned.mutable_data(), page.bytes.data(), page.bytes.size());
        page.bytes = std::move(pinned);
      }
    }
    const uint32_t crc = page.crc.has_value() ? *page.crc : page_format::PageChecksum(page);
    page.crc.reset();
    const uint64_t hash = page.hash;
    lru_.push_front(Entry{std::move(page), crc});
    index_.emplace(hash, lru_.begin());
    stats_.bytes += entry_bytes_;
    ++stats_.pages;
  }
  static PageRecord Load(const Entry& e) { return e.page; }  // shares the buffer

  void Drop(EntryIt it) {
    index_.erase(it->page.hash);
    lru_.erase(it);
    stats_.bytes -= entry_bytes_;
    --stats_.pages;
  }

  // `crc`: the entry's checksum as StartLookup computed it (page_format::PageChecksums), or the
  // stored one where the tier does not check on lookup.
  absl::StatusOr<PageRecord> Lookup(uint64_t hash, uint32_t crc) {
    ++stats_.lookups;
    auto it = index_.find(hash);
    if (it == index_.end()) {
      return absl::NotFoundError(absl::StrCat("page ", hash, " not in the host tier"));
    }
    Entry& e = *it->second;
    if (crc != e.crc) {
      ++stats_.checksum_failures;
      Drop(it->second);
      return absl::DataLossError(
          absl::StrCat("page ", hash, " in the host tier failed its checksum; dropped"));
    }
    lru_.splice(lru_.begin(), lru_, it->second);  // most recently used; iterators stay valid
    ++stats_.hits;
    stats_.hit_bytes += entry_bytes_;
    PageRecord r = Load(e);
    if (options_.verify == HostPageTierOptions::Verify::kByConsumer) r.unchecked_crc = e.crc;
    return r;
  }

  HostPageTierOptions options_;
  int64_t entry_bytes_ = 0;
  std::list<Entry> lru_;  // front: most recently used
  std::unordered_map<uint64_t, EntryIt> index_;
  std::unordered_map<LookupHandle, std::vector<absl::StatusOr<PageRecord>>> done_;
  LookupHandle next_handle_ = 1;
  PageTierStats stats_;
};

}  // namespace

std::unique_ptr<KvPageTier> MakeHostPageTier(const HostPageTierOptions& options) {
  return std::make_unique<HostPageTier>(options);
}

bool CorruptHostPageForTesting(KvPageTier& tier, uint64_t hash, size_t offset) {
  auto* host = dynamic_cast<HostPageTier*>(&tier);
  return host != nullptr && host->Corrupt(hash, offset);
}

}  // namespace longview
