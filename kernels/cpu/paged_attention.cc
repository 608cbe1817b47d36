#include "kernels/cpu/paged_attention.h"

#include <algorithm>

#include "kernels/kv_selection.h"
#include "kernels/cpu/selection_attention.h"

namespace longview::cpu {

void PagedAttention(const AttentionParams& p, const PagedKvView& kv, const RopeTable& rope,
                    const float* q, const int64_t* q_pos, int64_t n_q, int64_t kv_len, float* out) {
  if (n_q <= 0) return;
  int64_t min_pos = q_pos[0], max_pos = q_pos[0];
  for (int64_t i = 1; i < n_q; ++i) {
    min_pos = std::min(min_pos, q_pos[i]);
    max_pos = std::max(max_pos, q_pos[i]);
  }
  // Keys any query can see.
  const int64_t lo = p.window > 0 ? std::max<int64_t>(0, min_pos - p.window + 1) : 0;
  const int64_t hi = std::min(kv_len, max_pos + 1);
  const int64_t n_keys = std::max<int64_t>(0, hi - lo);

  // Dense attention is the selection of every key any query can see, at its token index.
  KvSelection selection;
  AppendTokenRange(std::span<const int32_t>(kv.block_table, kv.num_blocks), kv.page_size, lo,
                   n_keys, lo, selection);
  SelectionAttention(p, kv, rope, selection, q, q_pos, n_q, out);
}

}  // namespace longview::cpu
