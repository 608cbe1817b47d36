// The scheduler's whole view of the KV cache (vLLM v1 `kv_cache_manager.py`): which pages a
// sequence holds, a prefix cache over full blocks, reference counts for sharing, and a free list
// in eviction order. The scheduler never sees tensors; only block ids leave this class.
//
//   KvCacheManager kv({.num_blocks = 1024, .page_size = 16});
//   KvSequence seq{.seq_id = 7, .tokens = tokens, .num_computed_tokens = 0};
//   ComputedBlocks hit = kv.GetComputedBlocks(seq);              // read-only
//   if (kv.NumBlocksToAllocate(seq, n, &hit) <= kv.NumFreeBlocks()) {
//     std::optional<SlotAllocation> a = kv.AllocateSlots(seq, n, &hit);   // commits
//   }
//   kv.Free(7);
//
// Prefix cache: the hash of a full block chains the parent block's hash and the block's token
// ids (the first block's parent is the sequence's `cache_salt`). A block is registered when
// AllocateSlots makes room for its last token; it stays findable after Free while it sits on the
// free list, and loses its hash only when it is reallocated (evicted).
//
// Eviction order: Free returns a sequence's blocks to the tail of the free list last block
// first, so a prefix outlives its tail; allocation takes from the head (freed longest ago).
//
// Sharing: Fork gives a second sequence the same blocks (reference count + 1). A sequence that
// writes into a shared partial block gets a private copy: AllocateSlots returns the (src, dst)
// page copy the runner must do before the forward (copy-on-write).
//
// Block locations: a sequence's table maps each logical block to a BlockLocation (tier + page).
// This manager owns the device tier's page ids; BlockIds gives the device view the runner reads.
//
// Lower tiers (DESIGN §3; kvcache/tiered_kv_store.h): with a StagedPages source set, a prefix
// lookup continues past the device's cached blocks through pages staged from the host or disk
// tier (already read and verified); AllocateSlots then gives each such block a fresh device
// page, registers its hash, and returns a PagePromotion (the runner's storage must receive the
// staged bytes before the forward). With evictions recorded (record_evictions), a cached block
// whose page is reallocated leaves a PageEviction (hash, parent hash, tokens, page) that the
// engine reads from the device before anything writes the page, and demotes to the tiers.
//
// State slots (DESIGN §1, per-sequence mode state): with state_bytes_per_seq > 0, every sequence
// holding blocks also holds one of `num_state_slots` fixed-size slots in the backend's
// KvStorage — taken by its first AllocateSlots (nothing when none is free: a normal result, like
// blocks), freed with its blocks (finish or preemption: a resumed sequence starts afresh), and
// copied on Fork (the child's first AllocateSlots returns the copy to do).
//
// Errors: out of blocks or slots is a normal result (std::nullopt); a broken precondition is a
// Status (FailedPrecondition / Internal), never an exception.
// Thread-safety: not thread-safe; owned by the engine loop.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "kvcache/block_location.h"
#include "kvcache/kv_storage.h"

namespace longview {

struct KvCacheManagerOptions {
  int32_t num_blocks = 0;
  int64_t page_size = 16;
  bool enable_prefix_caching = true;
  // Per-sequence mode state: bytes per slot (0 = none) and slots in the backend's storage.
  int64_t state_bytes_per_seq = 0;
  int32_t num_state_slots = 0;
  // Keep a PageEviction for each cached block whose page is reallocated (TakeEvictions).
  bool record_evictions = false;
  // Keep a record of each block registered in the prefix cache (TakeRegistrations): its page is
  // full once the step that allocated it has run, and stays unchanged while it is cached, so the
  // engine may copy it to the tiers early (write-back) instead of at eviction.
  bool record_registrations = false;
};

// Pages fetched from a lower tier and verified, waiting to be taken by a prefix hit.
class StagedPages {
 public:
  virtual ~StagedPages() = default;
  // Whether a page for this hash, with this parent hash and these tokens, is staged.
  virtual bool Has(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const = 0;
};

// A staged page to write into a fresh device page before the forward.
struct PagePromotion {
  int32_t page = 0;
  uint64_t hash = 0;
  bool operator==(const PagePromotion&) const = default;
};

// A cached block leaving the device: its page's bytes are still intact when this is taken.
struct PageEviction {
  int32_t page = 0;
  uint64_t hash = 0;
  uint64_t parent_hash = 0;
  std::vector<int32_t> tokens;
};

// InvalidArgument naming the field: num_blocks < 0, page_size < 1, state sizes negative, or
// state bytes without slots.
absl::Status ValidateKvCacheManagerOptions(const KvCacheManagerOptions& options);

// What the cache needs to know of a sequence.
struct KvSequence {
  int64_t seq_id = 0;
  std::span<const int32_t> tokens;  // every known token (prompt + output)
  int64_t num_computed_tokens = 0;  // tokens whose K/V are already in the pages
  uint64_t cache_salt = 0;          // separates prefix caches (e.g. attention modes)
  // Per token, a key mixed into its block's hash where non-zero (input embeddings' content,
  // engine/runner/input_embeddings.h); may be shorter than `tokens` or empty.
  std::span<const uint64_t> token_keys;
  // False: the sequence neither takes prefix hits nor registers its blocks (a KV policy
  // rewrites its pages in place, kvcache/kv_policy.h).
  bool cacheable = true;
  // > 0: the sequence's attention reads only its first `window_sinks` tokens and its last
  // `window` ones (a releasable sliding window, kvcache/block_table.h BlocksOutsideWindow), so a
  // prefix hit needs only those blocks on the device; the ones between may be gone.
  int64_t window = 0;
  int64_t window_sinks = 0;
};

// A prefix-cache hit: cached full blocks covering tokens [0, num_tokens).
struct ComputedBlocks {
  std::vector<int32_t> block_ids;
  std::vector<uint64_t> block_hashes;
  // Blocks after the device's, staged from a lower tier (hashes, in order).
  std::vector<uint64_t> staged_hashes;
  // A windowed hit (KvSequence::window): logical blocks [hole_begin, hole_end) are not taken
  // (outside the window after the hit; the sequence's table holds -1 there, as if released);
  // block_ids are the device blocks before and after the hole, block_hashes cover every block.
  int64_t hole_begin = 0;
  int64_t hole_end = 0;
  int64_t num_tokens = 0;
  int64_t num_queried_tokens = 0;  // tokens looked up (0 when prefix caching is off)
};

struct SlotAllocation {
  std::vector<int32_t> new_block_ids;   // appended to the sequence's table (or a CoW copy)
  std::vector<PageCopy> copies;         // to do before this step's forward
  std::vector<StateCopy> state_copies;  // a forked sequence's first allocation: its parent's state
  int32_t new_state_slot = -1;          // a slot taken by this allocation (to clear unless copied)
  std::vector<PagePromotion> promotions;  // staged pages to write before the forward
};

class KvCacheManager {
 public:
  // REQUIRES: ValidateKvCacheManagerOptions(options).ok() (checked; a broken one aborts).
  explicit KvCacheManager(const KvCacheManagerOptions& options);

  int32_t num_blocks() const { return static_cast<int32_t>(ref_counts_.size()); }
  int64_t page_size() const { return options_.page_size; }
  int32_t NumFreeBlocks() const { return num_free_; }
  int32_t NumFreeStateSlots() const { return static_cast<int32_t>(free_slots_.size()); }
  bool has_state() const { return options_.state_bytes_per_seq > 0; }
  // Fraction of blocks held by sequences, in [0, 1].
  double Usage() const;

  // Where staged lower-tier pages are found (null: none). Not owned; must outlive its use.
  void SetStagedPages(const StagedPages* staged) { staged_ = staged; }
  // The cached blocks' evictions since the last call (record_evictions), oldest first.
  std::vector<PageEviction> TakeEvictions() { return std::exchange(evictions_, {}); }
  // Blocks registered since the last call (record_registrations), in order; same record as an
  // eviction (the page's bytes are complete after the step that allocated them).
  std::vector<PageEviction> TakeRegistrations() { return std::exchange(registrations_, {}); }
  // Hashes of the full blocks of `seq` after its device prefix hit (the blocks a lower tier may
  // hold), as many as a prefix hit may cover. Read-only.
  std::vector<std::pair<uint64_t, uint64_t>> BlocksPastDeviceHit(const KvSequence& seq) const;

  // The longest run of cached full blocks that starts `seq.tokens`, keeping at least the last
  // token to compute (its logits are needed): device blocks, then staged ones. Read-only.
  // A windowed sequence (seq.window > 0) may instead take a longer hit whose blocks outside the
  // window are missing: its sinks' and window's blocks on the device, a hole between (preferred
  // at equal length, since it promotes nothing).
  // REQUIRES: the sequence holds no blocks.
  ComputedBlocks GetComputedBlocks(const KvSequence& seq) const;

  // Blocks AllocateSlots(seq, num_new_tokens, computed) would take from the free list: new
  // blocks, a copy-on-write copy, and cached free blocks the hit revives. Read-only; plan with it.
  int32_t NumBlocksToAllocate(const KvSequence& seq, int64_t num_new_tokens,
                              const ComputedBlocks* computed) const;
  // Blocks Free(seq_id) would return to the free list (those only this sequence holds).
  int32_t NumBlocksFreedBy(int64_t seq_id) const;

  // Makes room for `num_new_tokens` tokens after the computed ones: takes the hit's blocks
  // (a sequence holding no blocks; its computed tokens become `computed->num_tokens`), copies a
  // shared partial block it will write into, allocates new blocks, and registers the hashes of
  // blocks whose last token is among the new ones. Counts the hit in the prefix-cache stats.
  // A sequence's first allocation also takes a state slot when the manager keeps state.
  // std::nullopt when out of blocks or slots: a normal result that changes nothing.
  // FailedPrecondition (nothing changed) for a prefix hit given to a sequence holding blocks.
  // REQUIRES: num_computed + num_new_tokens <= seq.tokens.size().
  [[nodiscard]] absl::StatusOr<std::optional<SlotAllocation>> AllocateSlots(
      const KvSequence& seq, int64_t num_new_tokens, const ComputedBlocks* computed);
  // Drops the sequence's references; blocks reaching zero go to the free list tail, last block
  // first; its state slot is freed. No-op for an unknown sequence. Internal for a block that was
  // already free (a broken reference count; the rest is still released).
  [[nodiscard]] absl::Status Free(int64_t seq_id);
  // Removes the page's block from the prefix cache (its contents turned out wrong: a promoted
  // page that failed its deferred checksum). No-op for a page without a cached block.
  void Uncache(int32_t page);
  // Sliding windows: drops the sequence's references to its logical blocks [begin, end) (those
  // its attention no longer reads, see BlocksOutsideWindow) and leaves -1 in their place in
  // BlockIds, so later positions keep their blocks. Blocks reaching zero go to the free list
  // tail, still findable by the prefix cache. Already released blocks are skipped. Returns the
  // blocks that went to the free list. No-op for an unknown sequence.
  // REQUIRES: the range excludes the block holding the next token to compute.
  int32_t ReleaseBlocks(int64_t seq_id, int64_t begin, int64_t end);
  // Gives `child_id` the blocks of `parent_id` (shared; reference counts + 1). With state, the
  // child takes a slot now and its first AllocateSlots returns the parent's state to copy.
  // ResourceExhausted when no slot is free (nothing changed). No-op for an unknown parent.
  [[nodiscard]] absl::Status Fork(int64_t parent_id, int64_t child_id);

  // The sequence's device pages by logical block, -1 where a block is not on the device
  // (released, or in another tier); empty for an unknown sequence.
  std::vector<int32_t> BlockIds(int64_t seq_id) const;
  // The sequence's block table. Valid until the next mutation.
  std::span<const BlockLocation> Locations(int64_t seq_id) const;
  // The sequence's state slot, or -1 (no state kept, or unknown sequence).
  int32_t StateSlot(int64_t seq_id) const;
  int32_t RefCount(int32_t block_id) const { return ref_counts_.at(block_id); }
  bool IsCached(int32_t block_id) const { return has_hash_.at(block_id) != 0; }
  // Free blocks, next to be reused first (for tests and debugging; O(free blocks)).
  std::vector<int32_t> FreeBlockIds() const;

  int64_t prefix_cache_queries() const { return num_queries_; }  // tokens
  int64_t prefix_cache_hits() const { return num_hits_; }        // tokens

 private:
  struct SeqBlocks {
    std::vector<BlockLocation> blocks;
    std::vector<uint64_t> hashes;  // of the first hashes.size() blocks (full, registered)
    // A run of blocks ReleaseBlocks already released: [released_begin, released_end).
    int64_t released_begin = 0;
    int64_t released_end = 0;
    int32_t state_slot = -1;
    int32_t copy_state_from = -1;  // forked: the parent's slot, copied at the first allocation
  };

  // Blocks needed from the free list; *cow_index set to the block to copy, or -1.
  int32_t Needed(const SeqBlocks* sb, const KvSequence& seq, int64_t num_new_tokens,
                 const ComputedBlocks* computed, int64_t* cow_index) const;
  uint64_t HashBlock(uint64_t parent, std::span<const int32_t> tokens) const;
  // The hash of `seq`'s logical block `b` (its tokens and token keys) after `parent`.
  uint64_t HashBlockOf(const KvSequence& seq, int64_t b, uint64_t parent) const;
  // GetComputedBlocks' windowed hit over the first `max_blocks` blocks (empty when none).
  ComputedBlocks WindowedHit(const KvSequence& seq, int64_t max_blocks) const;
  // Cached block holding exactly these tokens after `parent`, or -1.
  int32_t Lookup(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const;
  void RegisterFullBlocks(SeqBlocks& sb, const KvSequence& seq, int64_t num_tokens);
  // Free-list primitives (intrusive doubly linked list over block ids).
  void PushFreeTail(int32_t id);
  void RemoveFree(int32_t id);
  int32_t PopFreeHead();    // evicts the block's hash
  int32_t TakeStateSlot();  // lowest free slot, or -1
  void ReleaseStateSlot(int32_t slot);

  KvCacheManagerOptions options_;
  std::vector<int32_t> ref_counts_;
  std::vector<int32_t> prev_, next_;  // free list links; -1 = none
  int32_t head_ = -1, tail_ = -1, num_free_ = 0;
  // Prefix cache: hash -> block, and per block its hash, parent hash and tokens (verified on hit).
  std::unordered_map<uint64_t, int32_t> cached_;
  std::vector<uint8_t> has_hash_;
  std::vector<uint64_t> hash_, parent_hash_;
  std::vector<int32_t> block_tokens_;  // [num_blocks][page_size]
  std::unordered_map<int64_t, SeqBlocks> seqs_;
  std::vector<int32_t> free_slots_;  // descending: the lowest free slot is last
  const StagedPages* staged_ = nullptr;
  std::vector<PageEviction> evictions_;
  std::vector<PageEviction> registrations_;
  int64_t num_queries_ = 0, num_hits_ = 0;
};

}  // namespace longview
