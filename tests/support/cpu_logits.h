// All-position logits of a token sequence through a CpuModel, run in chunks over pages used in
// reverse order (so that no test passes by pages happening to be contiguous).
//
//   std::vector<float> logits = AllLogits(model, ids, /*page_size=*/8, /*chunk=*/7, FullAttention());
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/cpu/cpu_model.h"
#include "gtest/gtest.h"
#include "kvcache/block_pool.h"
#include "kvcache/block_table.h"
#include "kvcache/host_kv_storage.h"

namespace longview {

inline std::vector<float> AllLogits(CpuModel& model, const std::vector<int32_t>& ids,
                                    int64_t page_size, int64_t chunk, const Attention& attention) {
  BlockTable table(page_size);
  BlockPool pool(table.BlocksNeeded(static_cast<int64_t>(ids.size())));
  HostKvStorage kv(model.kv_layout(page_size), pool.num_blocks());
  auto blocks = pool.Allocate(pool.num_blocks());
  EXPECT_TRUE(blocks.has_value());
  std::reverse(blocks->begin(), blocks->end());
  table.Append(*blocks);
  std::vector<float> all, part;
  for (size_t start = 0; start < ids.size(); start += chunk) {
    const size_t n = std::min<size_t>(chunk, ids.size() - start);
    absl::Status s = model.Forward({std::span<const int32_t>(ids).subspan(start, n),
                                    static_cast<int64_t>(start), &table},
                                   kv, /*all_logits=*/true, part, attention);
    EXPECT_TRUE(s.ok()) << s;
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

}  // namespace longview
