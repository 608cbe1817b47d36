// The host-memory page tier (kv_page_tier.h): an LRU list of whole pages, each with its CRC32C,
// verified whenever the page leaves (a lookup's copy, or a push down to the next tier).
#include <list>
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
      // A page that went bad here is not passed down: the next tier would checksum it afresh.
      if (page_format::PageChecksum(victim.page) == victim.crc) {
        result.displaced.push_back(std::move(victim.page));
      } else {
        ++stats_.checksum_failures;
      }
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
    std::vector<absl::StatusOr<PageRecord>> out;
    out.reserve(hashes.size());
    for (uint64_t hash : hashes) out.push_back(Lookup(hash));
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
    std::vector<std::byte>& bytes = it->second->page.bytes;
    bytes[offset % bytes.size()] ^= std::byte{0x10};
    return true;
  }

 private:
  struct Entry {
    PageRecord page;
    uint32_t crc = 0;
  };
  using EntryIt = std::list<Entry>::iterator;

  // The one place page memory is taken: the record's own vectors, moved in (no copy). A pinned
  // host allocator (for asynchronous device copies) would copy into its buffers here, and
  // Load() would copy out of them.
  void Store(PageRecord page) {
    const uint32_t crc = page_format::PageChecksum(page);
    const uint64_t hash = page.hash;
    lru_.push_front(Entry{std::move(page), crc});
    index_.emplace(hash, lru_.begin());
    stats_.bytes += entry_bytes_;
    ++stats_.pages;
  }
  static PageRecord Load(const Entry& e) { return e.page; }

  void Drop(EntryIt it) {
    index_.erase(it->page.hash);
    lru_.erase(it);
    stats_.bytes -= entry_bytes_;
    --stats_.pages;
  }

  absl::StatusOr<PageRecord> Lookup(uint64_t hash) {
    ++stats_.lookups;
    auto it = index_.find(hash);
    if (it == index_.end()) {
      return absl::NotFoundError(absl::StrCat("page ", hash, " not in the host tier"));
    }
    Entry& e = *it->second;
    if (page_format::PageChecksum(e.page) != e.crc) {
      ++stats_.checksum_failures;
      Drop(it->second);
      return absl::DataLossError(
          absl::StrCat("page ", hash, " in the host tier failed its checksum; dropped"));
    }
    lru_.splice(lru_.begin(), lru_, it->second);  // most recently used; iterators stay valid
    ++stats_.hits;
    stats_.hit_bytes += entry_bytes_;
    return Load(e);
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
