// Where a logical KV block of a sequence lives: a tier and a page in it (DESIGN §3). The block
// table of a sequence is a list of these; attention reads only device pages, so the step plan
// hands runners the device pages (-1 for a block that is elsewhere or released).
//
//   BlockLocation loc{.tier = KvTier::kDevice, .page = 12};
//   if (loc.on_device()) ...
// Thread-safety: plain values.
#pragma once

#include <cstdint>

namespace longview {

enum class KvTier : uint8_t {
  kNone = 0,    // released (left a sliding window) or never written
  kDevice = 1,  // the backend's page pool (GPU memory, or host memory for the CPU backend)
  kHost = 2,    // pinned host memory (the tiered store)
  kDisk = 3,    // RocksDB (the tiered store)
};

// "none", "device", "host", "disk".
const char* KvTierName(KvTier tier);

struct BlockLocation {
  KvTier tier = KvTier::kNone;
  int32_t page = -1;  // page (or slot) inside the tier; -1 when tier is kNone

  bool on_device() const { return tier == KvTier::kDevice; }
  // The device page, or -1.
  int32_t device_page() const { return on_device() ? page : -1; }
  bool operator==(const BlockLocation&) const = default;
};

inline BlockLocation DevicePage(int32_t page) { return {KvTier::kDevice, page}; }

}  // namespace longview
