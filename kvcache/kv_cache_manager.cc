#include "kvcache/kv_cache_manager.h"

#include "kvcache/block_table.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "absl/strings/str_format.h"
#include "common/mix64.h"

namespace longview {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

absl::Status ValidateKvCacheManagerOptions(const KvCacheManagerOptions& o) {
  if (o.num_blocks < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("num_blocks must be >= 0, got %d", o.num_blocks));
  }
  if (o.page_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("page_size must be >= 1, got %d", o.page_size));
  }
  if (o.state_bytes_per_seq < 0 || o.num_state_slots < 0) {
    return absl::InvalidArgumentError("state_bytes_per_seq and num_state_slots must be >= 0");
  }
  if (o.state_bytes_per_seq > 0 && o.num_state_slots == 0) {
    return absl::InvalidArgumentError("state_bytes_per_seq > 0 needs num_state_slots > 0");
  }
  return absl::OkStatus();
}

KvCacheManager::KvCacheManager(const KvCacheManagerOptions& options)
    : options_(options),
      ref_counts_(options.num_blocks, 0),
      prev_(options.num_blocks, -1),
      next_(options.num_blocks, -1),
      has_hash_(options.num_blocks, 0),
      hash_(options.num_blocks, 0),
      parent_hash_(options.num_blocks, 0),
      block_tokens_(options.enable_prefix_caching ? options.num_blocks * options.page_size : 0) {
  if (absl::Status st = ValidateKvCacheManagerOptions(options); !st.ok()) {
    std::fprintf(stderr, "KvCacheManager: %s\n", std::string(st.message()).c_str());
    std::abort();  // a broken invariant: callers validate the options first
  }
  for (int32_t i = 0; i < options.num_blocks; ++i) PushFreeTail(i);
  if (has_state()) {
    for (int32_t s = options.num_state_slots - 1; s >= 0; --s) free_slots_.push_back(s);
  }
}

double KvCacheManager::Usage() const {
  if (num_blocks() == 0) return 0;
  return 1.0 - static_cast<double>(num_free_) / num_blocks();
}

uint64_t KvCacheManager::HashBlock(uint64_t parent, std::span<const int32_t> tokens) const {
  uint64_t h = Mix64(parent ^ 0x6A09E667F3BCC908ull);
  for (int32_t t : tokens)
    h = Mix64(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(t)) + 0x9E3779B97F4A7C15ull));
  return h;
}

uint64_t KvCacheManager::HashBlockOf(const KvSequence& seq, int64_t b, uint64_t parent) const {
  const int64_t ps = options_.page_size;
  uint64_t h = HashBlock(parent, seq.tokens.subspan(b * ps, ps));
  const int64_t end = std::min<int64_t>((b + 1) * ps, seq.token_keys.size());
  for (int64_t i = b * ps; i < end; ++i) {
    if (seq.token_keys[i] == 0) continue;
    h = Mix64(h ^ (seq.token_keys[i] + static_cast<uint64_t>(i - b * ps)));
  }
  return h;
}

int32_t KvCacheManager::Lookup(uint64_t hash, uint64_t parent,
                               std::span<const int32_t> tokens) const {
  auto it = cached_.find(hash);
  if (it == cached_.end()) return -1;
  const int32_t id = it->second;
  if (parent_hash_[id] != parent) return -1;
  const int32_t* stored = &block_tokens_[id * options_.page_size];
  if (!std::equal(tokens.begin(), tokens.end(), stored)) return -1;
  return id;
}

ComputedBlocks KvCacheManager::GetComputedBlocks(const KvSequence& seq) const {
  ComputedBlocks hit;
  if (!options_.enable_prefix_caching || !seq.cacheable) return hit;
  const int64_t ps = options_.page_size;
  const int64_t n = static_cast<int64_t>(seq.tokens.size());
  hit.num_queried_tokens = n;
  // The last token is always computed: its logits are needed.
  const int64_t max_blocks = n > 0 ? (n - 1) / ps : 0;
  uint64_t parent = seq.cache_salt;
  for (int64_t b = 0; b < max_blocks; ++b) {
    auto tokens = seq.tokens.subspan(b * ps, ps);
    const uint64_t h = HashBlockOf(seq, b, parent);
    const int32_t id = Lookup(h, parent, tokens);
    if (id < 0) break;
    hit.block_ids.push_back(id);
    hit.block_hashes.push_back(h);
    parent = h;
  }
  if (staged_ != nullptr) {
    for (int64_t b = static_cast<int64_t>(hit.block_ids.size()); b < max_blocks; ++b) {
      auto tokens = seq.tokens.subspan(b * ps, ps);
      const uint64_t h = HashBlockOf(seq, b, parent);
      if (!staged_->Has(h, parent, tokens)) break;
      hit.staged_hashes.push_back(h);
      parent = h;
    }
  }
  hit.num_tokens =
      static_cast<int64_t>(hit.block_ids.size() + hit.staged_hashes.size()) * ps;
  if (seq.window > 0) {
    ComputedBlocks windowed = WindowedHit(seq, max_blocks);
    if (windowed.num_tokens >= hit.num_tokens && windowed.hole_end > windowed.hole_begin) {
      return windowed;
    }
  }
  return hit;
}

ComputedBlocks KvCacheManager::WindowedHit(const KvSequence& seq, int64_t max_blocks) const {
  const int64_t ps = options_.page_size;
  ComputedBlocks hit;
  hit.num_queried_tokens = static_cast<int64_t>(seq.tokens.size());
  std::vector<uint64_t> hashes(max_blocks);
  std::vector<int32_t> ids(max_blocks);
  // last_missing[k]: the last block before k not on the device, or -1.
  std::vector<int64_t> last_missing(max_blocks + 1, -1);
  int64_t first_missing = max_blocks;
  uint64_t parent = seq.cache_salt;
  for (int64_t b = 0; b < max_blocks; ++b) {
    auto tokens = seq.tokens.subspan(b * ps, ps);
    hashes[b] = HashBlockOf(seq, b, parent);
    ids[b] = Lookup(hashes[b], parent, tokens);
    parent = hashes[b];
    if (ids[b] < 0) first_missing = std::min(first_missing, b);
    last_missing[b + 1] = ids[b] < 0 ? b : last_missing[b];
  }
  // The longest k whose blocks outside [out.begin, out.end) are all on the device.
  for (int64_t k = max_blocks; k > 0; --k) {
    const BlockRange out = BlocksOutsideWindow(ps, seq.window_sinks, seq.window, k * ps);
    const int64_t hole_begin = std::min(out.begin, k), hole_end = std::min(out.end, k);
    if (first_missing < hole_begin || last_missing[k] >= std::max(hole_begin, hole_end)) continue;
    for (int64_t b = 0; b < k; ++b) {
      if (b < hole_begin || b >= hole_end) hit.block_ids.push_back(ids[b]);
    }
    if (hit.block_ids.empty()) return ComputedBlocks{};
    hashes.resize(k);
    hit.block_hashes = std::move(hashes);
    hit.hole_begin = hole_begin;
    hit.hole_end = hole_end;
    hit.num_tokens = k * ps;
    return hit;
  }
  return ComputedBlocks{};
}

std::vector<std::pair<uint64_t, uint64_t>> KvCacheManager::BlocksPastDeviceHit(
    const KvSequence& seq) const {
  std::vector<std::pair<uint64_t, uint64_t>> out;  // (hash, parent)
  if (!options_.enable_prefix_caching || !seq.cacheable) return out;
  const int64_t ps = options_.page_size;
  const int64_t n = static_cast<int64_t>(seq.tokens.size());
  const int64_t max_blocks = n > 0 ? (n - 1) / ps : 0;
  uint64_t parent = seq.cache_salt;
  bool on_device = true;
  for (int64_t b = 0; b < max_blocks; ++b) {
    auto tokens = seq.tokens.subspan(b * ps, ps);
    const uint64_t h = HashBlockOf(seq, b, parent);
    on_device = on_device && Lookup(h, parent, tokens) >= 0;
    if (!on_device) out.emplace_back(h, parent);
    parent = h;
  }
  return out;
}

int32_t KvCacheManager::Needed(const SeqBlocks* sb, const KvSequence& seq, int64_t num_new_tokens,
                               const ComputedBlocks* computed, int64_t* cow_index) const {
  const int64_t ps = options_.page_size;
  int64_t held = sb != nullptr ? static_cast<int64_t>(sb->blocks.size()) : 0;
  int64_t computed_tokens = seq.num_computed_tokens;
  int32_t revived = 0;
  if (computed != nullptr && (!computed->block_ids.empty() || !computed->staged_hashes.empty())) {
    held += static_cast<int64_t>(computed->block_ids.size()) +
            (computed->hole_end - computed->hole_begin);
    computed_tokens = computed->num_tokens;
    for (int32_t id : computed->block_ids) revived += ref_counts_[id] == 0 ? 1 : 0;
  }
  *cow_index = -1;
  // Writing into a partial block that another sequence shares: copy it first.
  if (sb != nullptr && num_new_tokens > 0 && computed_tokens % ps != 0) {
    const int64_t idx = computed_tokens / ps;
    if (idx < static_cast<int64_t>(sb->blocks.size()) && sb->blocks[idx].on_device() &&
        ref_counts_[sb->blocks[idx].page] > 1) {
      *cow_index = idx;
    }
  }
  const int64_t fresh = std::max<int64_t>(0, CeilDiv(computed_tokens + num_new_tokens, ps) - held);
  return static_cast<int32_t>(fresh) + revived + (*cow_index >= 0 ? 1 : 0);
}

int32_t KvCacheManager::NumBlocksToAllocate(const KvSequence& seq, int64_t num_new_tokens,
                                            const ComputedBlocks* computed) const {
  auto it = seqs_.find(seq.seq_id);
  int64_t cow = -1;
  return Needed(it == seqs_.end() ? nullptr : &it->second, seq, num_new_tokens, computed, &cow);
}

int32_t KvCacheManager::NumBlocksFreedBy(int64_t seq_id) const {
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) return 0;
  int32_t n = 0;
  for (const BlockLocation& b : it->second.blocks) {
    n += b.on_device() && ref_counts_[b.page] == 1 ? 1 : 0;
  }
  return n;
}

absl::StatusOr<std::optional<SlotAllocation>> KvCacheManager::AllocateSlots(
    const KvSequence& seq, int64_t num_new_tokens, const ComputedBlocks* computed) {
  auto it = seqs_.find(seq.seq_id);
  SeqBlocks* existing = it == seqs_.end() ? nullptr : &it->second;
  const bool has_hit = computed != nullptr &&
                       (!computed->block_ids.empty() || !computed->staged_hashes.empty());
  if (has_hit && existing != nullptr && !existing->blocks.empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "AllocateSlots: a prefix hit for sequence %d, which already holds blocks", seq.seq_id));
  }
  int64_t cow = -1;
  const int32_t need = Needed(existing, seq, num_new_tokens, computed, &cow);
  if (need > num_free_) return std::nullopt;
  const bool needs_slot = has_state() && (existing == nullptr || existing->state_slot < 0);
  if (needs_slot && free_slots_.empty()) return std::nullopt;

  SeqBlocks& sb = existing != nullptr ? *existing : seqs_[seq.seq_id];
  SlotAllocation out;
  if (needs_slot) {
    sb.state_slot = TakeStateSlot();
    out.new_state_slot = sb.state_slot;
  }
  if (sb.copy_state_from >= 0) {
    out.state_copies.push_back({sb.copy_state_from, sb.state_slot});
    sb.copy_state_from = -1;
  }
  int64_t computed_tokens = seq.num_computed_tokens;
  if (computed != nullptr) {
    num_queries_ += computed->num_queried_tokens;
    num_hits_ += computed->num_tokens;
    if (has_hit) {
      for (int32_t id : computed->block_ids) {
        // A windowed hit's hole: blocks its attention never reads, as a release leaves them.
        while (static_cast<int64_t>(sb.blocks.size()) >= computed->hole_begin &&
               static_cast<int64_t>(sb.blocks.size()) < computed->hole_end) {
          sb.blocks.push_back(BlockLocation{});
        }
        if (ref_counts_[id] == 0) RemoveFree(id);
        ++ref_counts_[id];
        sb.blocks.push_back(DevicePage(id));
      }
      while (static_cast<int64_t>(sb.blocks.size()) < computed->hole_end) {
        sb.blocks.push_back(BlockLocation{});
      }
      if (computed->hole_end > computed->hole_begin) {
        sb.released_begin = computed->hole_begin;
        sb.released_end = computed->hole_end;
      }
      sb.hashes = computed->block_hashes;
      // Staged blocks: fresh pages the engine fills from the staged bytes before the forward.
      const int64_t ps = options_.page_size;
      for (uint64_t h : computed->staged_hashes) {
        const int64_t b = static_cast<int64_t>(sb.blocks.size());
        const uint64_t parent = b == 0 ? seq.cache_salt : sb.hashes[b - 1];
        const int32_t id = PopFreeHead();
        ref_counts_[id] = 1;
        sb.blocks.push_back(DevicePage(id));
        sb.hashes.push_back(h);
        out.new_block_ids.push_back(id);
        out.promotions.push_back({id, h});
        if (!cached_.contains(h)) {
          cached_.emplace(h, id);
          has_hash_[id] = 1;
          hash_[id] = h;
          parent_hash_[id] = parent;
          auto tokens = seq.tokens.subspan(b * ps, ps);
          std::copy(tokens.begin(), tokens.end(), &block_tokens_[id * ps]);
        }
      }
      computed_tokens = computed->num_tokens;
    }
  }
  if (cow >= 0) {
    const int32_t src = sb.blocks[cow].page;
    const int32_t dst = PopFreeHead();
    ref_counts_[dst] = 1;
    --ref_counts_[src];  // was shared: stays >= 1
    sb.blocks[cow] = DevicePage(dst);
    out.copies.push_back({src, dst});
    out.new_block_ids.push_back(dst);
  }
  const int64_t total = CeilDiv(computed_tokens + num_new_tokens, options_.page_size);
  while (static_cast<int64_t>(sb.blocks.size()) < total) {
    const int32_t id = PopFreeHead();
    ref_counts_[id] = 1;
    sb.blocks.push_back(DevicePage(id));
    out.new_block_ids.push_back(id);
  }
  if (options_.enable_prefix_caching && seq.cacheable) {
    RegisterFullBlocks(sb, seq, computed_tokens + num_new_tokens);
  }
  return out;
}

void KvCacheManager::RegisterFullBlocks(SeqBlocks& sb, const KvSequence& seq, int64_t num_tokens) {
  const int64_t ps = options_.page_size;
  const int64_t full = std::min<int64_t>(num_tokens, seq.tokens.size()) / ps;
  for (int64_t b = static_cast<int64_t>(sb.hashes.size()); b < full; ++b) {
    const uint64_t parent = b == 0 ? seq.cache_salt : sb.hashes[b - 1];
    auto tokens = seq.tokens.subspan(b * ps, ps);
    const uint64_t h = HashBlockOf(seq, b, parent);
    sb.hashes.push_back(h);
    const int32_t id = sb.blocks[b].device_page();
    // The first block computed with this content stays the cached one.
    if (id < 0 || has_hash_[id] || cached_.contains(h)) continue;
    cached_.emplace(h, id);
    has_hash_[id] = 1;
    hash_[id] = h;
    parent_hash_[id] = parent;
    std::copy(tokens.begin(), tokens.end(), &block_tokens_[id * ps]);
    if (options_.record_registrations) {
      registrations_.push_back({.page = id,
                                .hash = h,
                                .parent_hash = parent,
                                .tokens = std::vector<int32_t>(tokens.begin(), tokens.end())});
    }
  }
}

void KvCacheManager::Uncache(int32_t page) {
  if (page < 0 || page >= static_cast<int32_t>(has_hash_.size()) || !has_hash_[page]) return;
  auto it = cached_.find(hash_[page]);
  if (it != cached_.end() && it->second == page) cached_.erase(it);
  has_hash_[page] = 0;
}

absl::Status KvCacheManager::Free(int64_t seq_id) {
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) return absl::OkStatus();
  absl::Status status;
  const std::vector<BlockLocation>& blocks = it->second.blocks;
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) {
    if (!b->on_device()) continue;  // released by a sliding window, or in another tier
    int32_t& rc = ref_counts_[b->page];
    if (rc <= 0) {
      status = absl::InternalError(
          absl::StrFormat("KvCacheManager::Free: sequence %d holds block %d, which is already free",
                          seq_id, b->page));
      continue;
    }
    if (--rc == 0) PushFreeTail(b->page);
  }
  ReleaseStateSlot(it->second.state_slot);
  seqs_.erase(it);
  return status;
}

absl::Status KvCacheManager::Fork(int64_t parent_id, int64_t child_id) {
  auto it = seqs_.find(parent_id);
  if (it == seqs_.end()) return absl::OkStatus();
  const SeqBlocks& parent = it->second;
  SeqBlocks child = parent;
  child.state_slot = -1;
  child.copy_state_from = -1;
  if (has_state() && parent.state_slot >= 0) {
    child.state_slot = TakeStateSlot();
    if (child.state_slot < 0) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("Fork: no free state slot for sequence %d (%d slots)", child_id,
                          options_.num_state_slots));
    }
    child.copy_state_from = parent.state_slot;
  }
  for (const BlockLocation& b : child.blocks) {
    if (b.on_device()) ++ref_counts_[b.page];
  }
  seqs_[child_id] = std::move(child);
  return absl::OkStatus();
}

int32_t KvCacheManager::ReleaseBlocks(int64_t seq_id, int64_t begin, int64_t end) {
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) return 0;
  SeqBlocks& sb = it->second;
  end = std::min<int64_t>(end, static_cast<int64_t>(sb.blocks.size()));
  int32_t freed = 0;
  // Skip the run already known released (each step releases a little past the last one).
  const bool extends = sb.released_begin <= begin && begin <= sb.released_end;
  for (int64_t b = extends ? std::max(begin, sb.released_end) : begin; b < end; ++b) {
    const int32_t id = sb.blocks[b].device_page();
    if (id < 0) continue;
    sb.blocks[b] = BlockLocation{};
    if (--ref_counts_[id] == 0) {
      PushFreeTail(id);
      ++freed;
    }
  }
  if (extends) {
    sb.released_end = std::max(sb.released_end, end);
  } else {
    sb.released_begin = begin;
    sb.released_end = std::max(begin, end);
  }
  return freed;
}

std::vector<int32_t> KvCacheManager::BlockIds(int64_t seq_id) const {
  std::vector<int32_t> ids;
  for (const BlockLocation& b : Locations(seq_id)) ids.push_back(b.device_page());
  return ids;
}

std::span<const BlockLocation> KvCacheManager::Locations(int64_t seq_id) const {
  auto it = seqs_.find(seq_id);
  if (it == seqs_.end()) return {};
  return it->second.blocks;
}

int32_t KvCacheManager::StateSlot(int64_t seq_id) const {
  auto it = seqs_.find(seq_id);
  return it == seqs_.end() ? -1 : it->second.state_slot;
}

int32_t KvCacheManager::TakeStateSlot() {
  if (free_slots_.empty()) return -1;
  const int32_t slot = free_slots_.back();
  free_slots_.pop_back();
  return slot;
}

void KvCacheManager::ReleaseStateSlot(int32_t slot) {
  if (slot < 0) return;
  // Keep the list descending so the lowest free slot is reused first (deterministic ids).
  free_slots_.insert(
      std::upper_bound(free_slots_.begin(), free_slots_.end(), slot, std::greater<int32_t>()),
      slot);
}

std::vector<int32_t> KvCacheManager::FreeBlockIds() const {
  std::vector<int32_t> ids;
  ids.reserve(num_free_);
  for (int32_t id = head_; id >= 0; id = next_[id]) ids.push_back(id);
  return ids;
}

void KvCacheManager::PushFreeTail(int32_t id) {
  prev_[id] = tail_;
  next_[id] = -1;
  if (tail_ >= 0) {
    next_[tail_] = id;
  } else {
    head_ = id;
  }
  tail_ = id;
  ++num_free_;
}

void KvCacheManager::RemoveFree(int32_t id) {
  if (prev_[id] >= 0) {
    next_[prev_[id]] = next_[id];
  } else {
    head_ = next_[id];
  }
  if (next_[id] >= 0) {
    prev_[next_[id]] = prev_[id];
  } else {
    tail_ = prev_[id];
  }
  prev_[id] = next_[id] = -1;
  --num_free_;
}

int32_t KvCacheManager::PopFreeHead() {
  const int32_t id = head_;  // callers checked that the list holds enough blocks
  RemoveFree(id);
  if (has_hash_[id]) {
    auto it = cached_.find(hash_[id]);
    if (it != cached_.end() && it->second == id) cached_.erase(it);
    has_hash_[id] = 0;
    if (options_.record_evictions) {
      const int64_t ps = options_.page_size;
      evictions_.push_back({.page = id,
                            .hash = hash_[id],
                            .parent_hash = parent_hash_[id],
                            .tokens = std::vector<int32_t>(&block_tokens_[id * ps],
                                                           &block_tokens_[(id + 1) * ps])});
    }
  }
  return id;
}

}  // namespace longview
