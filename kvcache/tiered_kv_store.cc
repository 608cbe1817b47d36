#include "kvcache/tiered_kv_store.h"

#include <algorithm>

#include "kvcache/internal/page_format.h"
#include <unordered_set>

namespace longview {

TieredKvStore::TieredKvStore(std::vector<std::unique_ptr<KvPageTier>> tiers,
                             std::shared_ptr<PageArena> arena)
    : tiers_(std::move(tiers)),
      arena_(std::move(arena)),
      promoted_pages_(tiers_.size(), 0),
      promoted_bytes_(tiers_.size(), 0),
      rejected_pages_(tiers_.size(), 0) {}

int TieredKvStore::TierOf(uint64_t hash) const {
  for (size_t i = 0; i < tiers_.size(); ++i) {
    if (tiers_[i]->Contains(hash)) return static_cast<int>(i);
  }
  return -1;
}

void TieredKvStore::Demote(std::vector<PageRecord> pages) {
  // Write-through: every tier gets the page (the disk tier is what survives a restart), and
  // what a tier pushes out goes on to the next one (a no-op where that one holds it already).
  for (PageRecord& page : pages) {
    std::vector<PageRecord> carry;
    for (size_t i = 0; i < tiers_.size(); ++i) {
      const bool last = i + 1 == tiers_.size();
      InsertResult r = tiers_[i]->Insert(last ? std::move(page) : page);
      for (PageRecord& c : carry) {
        InsertResult rc = tiers_[i]->Insert(std::move(c));
        for (PageRecord& d : rc.displaced) r.displaced.push_back(std::move(d));
      }
      carry = std::move(r.displaced);
    }
  }
}

void TieredKvStore::Stage(std::span<const uint64_t> hashes) {
  const std::unordered_set<uint64_t> wanted(hashes.begin(), hashes.end());
  std::erase_if(staged_, [&](const auto& kv) { return !wanted.contains(kv.first); });
  std::vector<uint64_t> missing;
  for (uint64_t h : hashes) {
    if (!staged_.contains(h) && TierOf(h) >= 0) missing.push_back(h);
  }
  for (size_t i = 0; i < tiers_.size() && !missing.empty(); ++i) {
    std::vector<uint64_t> ask;
    for (uint64_t h : missing) {
      if (tiers_[i]->Contains(h)) ask.push_back(h);
    }
    if (ask.empty()) continue;
    const LookupHandle handle = tiers_[i]->StartLookup(ask);
    std::vector<absl::StatusOr<PageRecord>> got = tiers_[i]->Wait(handle);
    std::unordered_set<uint64_t> found;
    for (size_t k = 0; k < got.size() && k < ask.size(); ++k) {
      if (!got[k].ok() || got[k]->hash != ask[k]) continue;  // NotFound / DataLoss: next tier
      found.insert(ask[k]);
      staged_[ask[k]] = StagedPage{std::move(*got[k]), static_cast<int>(i)};
    }
    std::erase_if(missing, [&](uint64_t h) { return found.contains(h); });
  }
}

bool TieredKvStore::Has(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens) const {
  auto it = staged_.find(hash);
  if (it == staged_.end()) return false;
  const PageRecord& r = it->second.record;
  return r.parent_hash == parent && std::equal(tokens.begin(), tokens.end(), r.tokens.begin(),
                                               r.tokens.end());
}

const PageRecord* TieredKvStore::Staged(uint64_t hash) const {
  auto it = staged_.find(hash);
  return it == staged_.end() ? nullptr : &it->second.record;
}

void TieredKvStore::Promoted(uint64_t hash) {
  auto it = staged_.find(hash);
  if (it == staged_.end()) return;
  ++promoted_pages_[it->second.tier];
  promoted_bytes_[it->second.tier] += static_cast<int64_t>(it->second.record.bytes.size());
  staged_.erase(it);
}

std::vector<uint64_t> TieredKvStore::CheckStaged(std::span<const uint64_t> hashes) const {
  std::vector<const PageRecord*> unchecked;
  std::vector<uint64_t> which;
  for (uint64_t h : hashes) {
    auto it = staged_.find(h);
    if (it != staged_.end() && it->second.record.unchecked_crc.has_value()) {
      unchecked.push_back(&it->second.record);
      which.push_back(h);
    }
  }
  std::vector<uint32_t> crcs(unchecked.size(), 0);
  page_format::PageChecksums(unchecked, crcs);
  std::vector<uint64_t> bad;
  for (size_t i = 0; i < unchecked.size(); ++i) {
    if (crcs[i] != *unchecked[i]->unchecked_crc) bad.push_back(which[i]);
  }
  return bad;
}

void TieredKvStore::Rejected(uint64_t hash) {
  auto it = staged_.find(hash);
  if (it == staged_.end()) return;
  const int tier = it->second.tier;
  ++rejected_pages_[tier];
  tiers_[tier]->Erase(hash);
  staged_.erase(it);
}

std::vector<TierReport> TieredKvStore::Report() const {
  std::vector<TierReport> out;
  for (size_t i = 0; i < tiers_.size(); ++i) {
    out.push_back({tiers_[i]->name(), tiers_[i]->stats(), promoted_pages_[i], promoted_bytes_[i]});
    out.back().stats.checksum_failures += rejected_pages_[i];  // found by the consumer
  }
  return out;
}

}  // namespace longview
