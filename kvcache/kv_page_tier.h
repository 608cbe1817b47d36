// The tiers below the device pool (DESIGN §3): pinned host memory and RocksDB on disk. A tier
// holds whole KV pages (every layer, contiguous, in the device's element type, exactly the bytes
// KvStorage::ReadPages gives) under the prefix cache's chained block hash, with the page's
// tokens and parent hash for verification and a CRC32C over everything.
//
//   std::unique_ptr<KvPageTier> host = MakeHostPageTier(
//       {.capacity_bytes = 8ll << 30, .page_bytes = kv.page_bytes(), .page_size = 16});
//   InsertResult r = host->Insert(std::move(page));       // may decline; may push others out
//   LookupHandle h = host->StartLookup(hashes);           // asynchronous
//   std::vector<absl::StatusOr<PageRecord>> got = host->Wait(h);  // batched wait
//
// Errors: never throws. A lookup answers per page: the record, NotFound (not held), or DataLoss
// (its checksum or framing is wrong: the entry is dropped and counted, never served).
// Thread-safety: a tier is driven by one thread (the engine loop); its own background work
// (disk writes and reads) is internal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "kvcache/page_bytes.h"

namespace longview {

// One page leaving (or coming back to) the device.
struct PageRecord {
  uint64_t hash = 0;             // the prefix cache's chained block hash (includes the salt)
  uint64_t parent_hash = 0;      // the previous block's hash (the salt for a first block)
  std::vector<int32_t> tokens;   // the block's page_size token ids
  PageBytes bytes;               // page_bytes() of K/V as KvStorage::ReadPages gives them
  // Set by a lookup that returned the page without checking it (the host tier with
  // Verify::kByConsumer): the CRC32C stored with it, which the consumer checks before the
  // bytes are used (the engine does, while the page's copy to the device runs).
  std::optional<uint32_t> unchecked_crc;
  // Set by whoever made the record from the bytes it read (the engine computes it beside the
  // next step): the page's checksum (page_format::PageChecksum), which a tier keeps instead of
  // computing it again on the engine's thread.
  std::optional<uint32_t> crc;
};

// The CRC32C the tiers keep with a page: over hash and parent hash, the tokens, then the bytes.
uint32_t PageChecksumOf(const PageRecord& page);

struct InsertResult {
  bool accepted = false;
  // Pages this tier pushed out to make room (least recently used first), for the next tier
  // down; empty for the last tier, which drops what it evicts.
  std::vector<PageRecord> displaced;
};

// Counters of one tier since it was created (occupancy is current).
struct PageTierStats {
  int64_t pages = 0;                 // held now
  int64_t bytes = 0;                 // held now (records as stored, headers included)
  int64_t capacity_bytes = 0;
  int64_t inserted_pages = 0;        // demotions into this tier
  int64_t inserted_bytes = 0;
  int64_t declined_pages = 0;        // inserts declined (full with nothing to evict, I/O error)
  int64_t evicted_pages = 0;         // pushed out (to the next tier, or dropped)
  int64_t lookups = 0;               // pages asked for
  int64_t hits = 0;                  // pages returned
  int64_t hit_bytes = 0;
  int64_t checksum_failures = 0;     // DataLoss answers (entry dropped)
  int64_t io_errors = 0;             // failed reads / writes
};

using LookupHandle = int64_t;

class KvPageTier {
 public:
  virtual ~KvPageTier() = default;
  virtual const char* name() const = 0;  // "host", "disk"

  // Takes a page. Declines (accepted false) rather than fail: when the page cannot ever fit,
  // when the tier is disabled after an I/O error (a full disk: logged once, counted), or when
  // the page is malformed (bytes or tokens of the wrong size). An already held hash is a no-op
  // that counts as accepted.
  virtual InsertResult Insert(PageRecord page) = 0;
  // Whether the tier holds (or is writing) a page under this hash. Index only, no I/O.
  virtual bool Contains(uint64_t hash) const = 0;
  // Starts reading pages; Wait returns them in the order asked, each a record, NotFound or
  // DataLoss. A hit refreshes the page's recency. Handles are waited once.
  virtual LookupHandle StartLookup(std::span<const uint64_t> hashes) = 0;
  virtual std::vector<absl::StatusOr<PageRecord>> Wait(LookupHandle handle) = 0;
  // Drops a page (no-op when absent).
  virtual void Erase(uint64_t hash) = 0;
  virtual PageTierStats stats() const = 0;
};

// Pages in host memory, least recently used pushed out first (to `displaced`).
struct HostPageTierOptions {
  int64_t capacity_bytes = 0;  // 0: the tier holds nothing (every insert declined)
  int64_t page_bytes = 0;      // REQUIRES > 0
  int64_t page_size = 0;       // tokens per page; REQUIRES > 0
  // Where held pages live: an inserted page not already in the arena is copied into a free
  // block (pinned memory on the CUDA backend, so promotions copy to the device asynchronously);
  // null, or no free block: the page's own buffer is kept.
  std::shared_ptr<PageArena> arena;
  // Who checks a page's checksum when a lookup returns it. Pages pushed down to the next tier
  // are checked in every case.
  enum class Verify {
    kOnLookup,    // the lookup (on up to 16 threads for a large batch)
    kByConsumer,  // the lookup passes the stored checksum on in `unchecked_crc`; the engine
                  // checks it while the page's copy to the device runs
    kNever,       // host memory is trusted (--kv-host-verify false)
  };
  Verify verify = Verify::kOnLookup;
};
std::unique_ptr<KvPageTier> MakeHostPageTier(const HostPageTierOptions& options);

// Pages in RocksDB (integrated BlobDB for the page values). Keys start with `namespace_key`, a
// fingerprint of everything that makes a page's bytes what they are (model, dtype, page size,
// KV layout), so another model or configuration can never read them; the index of held pages
// is rebuilt from the database at Open, so pages survive restarts (kill -9 included). Over
// capacity, the oldest pages are deleted first. Writes run on a background thread (a bounded
// queue: Insert declines when it is full); a page being written is already found by Contains
// and served from the queue.
struct DiskPageTierOptions {
  std::string path;              // a folder; created if missing
  int64_t capacity_bytes = 0;    // REQUIRES > 0
  int64_t page_bytes = 0;        // REQUIRES > 0
  int64_t page_size = 0;         // REQUIRES > 0
  uint64_t namespace_key = 0;    // the fingerprint above
  int32_t read_threads = 4;      // parallel reads + checksum checks in Wait
  int64_t max_queued_bytes = 256ll << 20;  // pending writes before Insert declines
  // Pages read back are decoded into blocks of this arena when it has free ones (pinned host
  // memory on the CUDA backend); else into the heap.
  std::shared_ptr<PageArena> read_arena;
};
absl::StatusOr<std::unique_ptr<KvPageTier>> OpenDiskPageTier(const DiskPageTierOptions& options);

}  // namespace longview
