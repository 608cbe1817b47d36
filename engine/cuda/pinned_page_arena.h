// Pinned (page-locked) host memory for the KV page tiers: one cudaHostAlloc slab carved into
// page-sized blocks (kvcache/page_bytes.h), so the host tier's pages, the buffers demotions read
// into and the pages staged from disk copy to and from the device asynchronously at full PCIe
// speed. The slab is allocated up front (and freed when the last block is returned), so the
// pinned bytes are exactly what `--kv-host-memory-gib` plus the staging headroom says
// (longview:kv_host_pinned_bytes).
//
//   ASSIGN_OR_RETURN(std::shared_ptr<PageArena> arena,
//                    MakePinnedPageArena(kv.page_bytes(), num_pages));
#pragma once

#include <cstdint>
#include <memory>

#include "common/status.h"
#include "kvcache/page_bytes.h"

namespace longview {

// ResourceExhausted naming the bytes when the slab cannot be pinned.
absl::StatusOr<std::shared_ptr<PageArena>> MakePinnedPageArena(int64_t block_bytes,
                                                               int64_t num_blocks);

}  // namespace longview
