// `longview serve`'s tiers below the device pool (--kv-host-memory-gib, --kv-disk-path,
// --kv-disk-gib): builds the host and RocksDB tiers for the backend's page bytes, with a disk
// namespace that fingerprints everything a page's bytes depend on.
//
//   ASSIGN_OR_RETURN(auto store, OpenKvTiers(cfg, *lm, backend, runner->kv_storage()));
//   eo.kv_store = store;   // null when no tier was asked for
// Thread-safety: call once at start-up.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "engine/model/loaded_model.h"
#include "kvcache/kv_storage.h"
#include "kvcache/tiered_kv_store.h"

namespace longview {

struct KvTiersConfig {
  double host_memory_gib = 0;  // 0: no host tier
  std::string disk_path;       // empty: no disk tier
  double disk_gib = 0;         // REQUIRES > 0 with disk_path
  std::string device;          // the backend ("cpu", "cuda")
  std::string dtype;           // its KV element type ("float32", "bf16", "fp16")
  // The host memory the tiers keep pages in and stage them through (the CUDA backend's pinned
  // arena, engine/cuda/pinned_page_arena.h); null: the heap, page by page.
  std::function<absl::StatusOr<std::shared_ptr<PageArena>>(int64_t block_bytes,
                                                           int64_t num_blocks)>
      make_arena;
  bool host_verify = true;  // --kv-host-verify
};

// Pages of host memory beyond the host tier's own for buffers in flight: demotions being read,
// pages staged for waiting prompts, pages queued for the disk tier's writer.
int64_t KvStagingPages(int64_t page_bytes);

// The disk namespace: a 64-bit fingerprint of the model files (names, sizes, and their first
// and last MiB: a safetensors or GGUF header describes every tensor), the device, the KV
// element type, the page layout and the page bytes. Another model or configuration gets
// another namespace, so it never reads these pages.
absl::StatusOr<uint64_t> KvNamespaceKey(const LoadedModel& lm, const KvTiersConfig& config,
                                        const KvStorage& storage);

// Null when neither tier is asked for. InvalidArgument naming the flag for a bad size; the
// disk tier's error (naming the path) when it cannot be opened.
absl::StatusOr<std::shared_ptr<TieredKvStore>> OpenKvTiers(const KvTiersConfig& config,
                                                           const LoadedModel& lm,
                                                           const KvStorage& storage);

}  // namespace longview
