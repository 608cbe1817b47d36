// Knobs and hooks of the page tiers for tests and benchmarks only (tests/kvcache,
// tools/bench/kv_tier_bench.cc); the server uses kv_page_tier.h's factories and their defaults.
// RocksDB types stay forward-declared so that kv_page_tier.h's users never see RocksDB headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "kvcache/kv_page_tier.h"

namespace rocksdb {
class Env;
}

namespace longview {

// Flips one bit of the held page `hash` (of byte `offset % page_bytes` of its K/V bytes) without
// updating its checksum, as a memory fault would. False when `tier` is not a host tier or does
// not hold the page.
bool CorruptHostPageForTesting(KvPageTier& tier, uint64_t hash, size_t offset);

// What OpenDiskPageTier fixes, open for measurement and fault injection.
struct DiskPageTierTuning {
  // Writes go to the WAL (no fsync) rather than disableWAL + a Flush after each batch of pages.
  // The default is the measured choice (rocksdb_page_tier.cc, docs/bench/kv_tiers.md).
  bool use_wal = false;
  // Page values go to blob files (integrated BlobDB) rather than into the SST files.
  bool enable_blob_files = true;
  // -1: the default (rocksdb_page_tier.cc).
  int64_t min_blob_size = -1;
  // An Env for fault injection (a full disk); nullptr: rocksdb::Env::Default(). Not owned; must
  // outlive the tier.
  rocksdb::Env* env = nullptr;
  // Runs on the writer thread before each write batch (tests hold the writer here).
  std::function<void()> before_write;
};

absl::StatusOr<std::unique_ptr<KvPageTier>> OpenDiskPageTierTuned(
    const DiskPageTierOptions& options, const DiskPageTierTuning& tuning);

// Blocks until a disk tier's write queue is empty and its last batch is written (or failed), at
// most `timeout_ms`. False on timeout or when `tier` is not a disk tier.
bool WaitForDiskWritesForTesting(KvPageTier& tier, int64_t timeout_ms);

}  // namespace longview
