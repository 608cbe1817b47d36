// The tiers below the device pool, in order (host memory, then disk), as the engine loop uses
// them (DESIGN §3):
//   * Demote: cached pages leaving the device go to every tier (write-through: the disk tier is
//     what survives a restart); what a tier pushes out goes on to the next; the last tier drops
//     what it evicts.
//   * Stage: before scheduling, the pages a waiting sequence's prefix may take from a lower tier
//     are read (one batched lookup per tier: asynchronous reads, then one wait) and verified;
//     the cache manager's prefix lookup continues through them (StagedPages). A page that fails
//     its checksum in one tier is dropped there and may still come from the next.
//   * Promote: the engine writes a staged page into the fresh device page the prefix hit got,
//     and counts it for the tier it came from.
//
//   TieredKvStore store(std::move(tiers));                    // {host, disk}
//   kv.SetStagedPages(&store);
//   store.Stage(hashes_of_waiting_prefixes);                  // then schedule
//   store.Demote(records_of_evicted_pages);
//   const PageRecord* r = store.Staged(hash);                 // write r->bytes to the device
//   store.Promoted(hash);
// Thread-safety: driven by the engine loop's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kvcache/kv_cache_manager.h"
#include "kvcache/kv_page_tier.h"

namespace longview {

// Per tier: its own stats plus what the store counts.
struct TierReport {
  std::string name;
  PageTierStats stats;
  int64_t promoted_pages = 0;  // staged pages from this tier written to the device
  int64_t promoted_bytes = 0;
};

class TieredKvStore : public StagedPages {
 public:
  // `arena`: host memory the engine reads demoted pages into (the host tier's, pinned on the
  // CUDA backend); null: the heap.
  explicit TieredKvStore(std::vector<std::unique_ptr<KvPageTier>> tiers,
                         std::shared_ptr<PageArena> arena = nullptr);
  PageArena* arena() const { return arena_.get(); }

  bool empty() const { return tiers_.empty(); }
  // Index of the first tier holding `hash`, or -1. No I/O.
  int TierOf(uint64_t hash) const;
  // Inserts pages into every tier, cascading what each tier displaces to the next.
  void Demote(std::vector<PageRecord> pages);
  // Reads and verifies these pages (those not staged yet and held by some tier) into the staging
  // area, asking the tiers in order for what the previous ones did not return. Staged pages
  // not in `hashes` are dropped first, so the area holds what the queue still wants.
  void Stage(std::span<const uint64_t> hashes);
  // StagedPages: a staged page with this hash, parent and tokens.
  bool Has(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const override;
  // The staged page, or null.
  const PageRecord* Staged(uint64_t hash) const;
  // Counts a staged page as written to the device and drops it from the staging area.
  void Promoted(uint64_t hash);
  // Of these staged pages, those returned unchecked (PageRecord::unchecked_crc) whose bytes do
  // not match it: checked on up to 16 threads (beside the pages' copies to the device).
  std::vector<uint64_t> CheckStaged(std::span<const uint64_t> hashes) const;
  // A staged page whose deferred checksum failed (PageRecord::unchecked_crc): dropped from the
  // staging area and from its tier, and counted as that tier's checksum failure.
  void Rejected(uint64_t hash);
  int64_t staged_pages() const { return static_cast<int64_t>(staged_.size()); }
  std::vector<TierReport> Report() const;

 private:
  struct StagedPage {
    PageRecord record;
    int tier = 0;
  };
  std::vector<std::unique_ptr<KvPageTier>> tiers_;
  std::shared_ptr<PageArena> arena_;
  std::vector<int64_t> promoted_pages_, promoted_bytes_, rejected_pages_;
  std::unordered_map<uint64_t, StagedPage> staged_;
};

}  // namespace longview
