#include "kernels/cpu/selection_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/ops.h"

namespace longview::cpu {

void SelectionAttention(const AttentionParams& p, const PagedKvView& kv, const RopeTable& rope,
                        const KvSelection& selection, const float* q, const int64_t* q_pos,
                        int64_t n_q, float* out, float* key_stats, int64_t stats_from_row) {
  if (n_q <= 0) return;
  const int64_t d = p.head_dim;
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  int64_t max_keys = 0;
  std::vector<int64_t> stats_offset(p.num_kv_heads + 1, 0);
  for (int64_t kh = 0; kh < p.num_kv_heads; ++kh) {
    const int64_t n = selection.NumKeys(kh);
    max_keys = std::max(max_keys, n);
    stats_offset[kh + 1] = stats_offset[kh] + n;
  }

  ParallelFor(p.num_kv_heads, 1, [&](int64_t h0, int64_t h1) {
    std::vector<float> keys(max_keys * d), values(max_keys * d), scores(max_keys);
    std::vector<int64_t> positions(max_keys);
    for (int64_t kh = h0; kh < h1; ++kh) {
      // Gather this head's selected keys (rotated to their positions) and values.
      int64_t n_keys = 0;
      for (const KvSpan& span : selection.ForHead(kh)) {
        const float* page = kv.pages + span.page_id * kv.page_elements + kh * d;
        for (int32_t s = 0; s < span.count; ++s, ++n_keys) {
          const float* base = page + (span.first_slot + s) * kv.token_stride;
          float* kd = keys.data() + n_keys * d;
          std::memcpy(kd, base + kv.k_offset, d * sizeof(float));
          positions[n_keys] = span.first_position + s;
          rope.Rotate(kd, positions[n_keys]);
          std::memcpy(values.data() + n_keys * d, base + kv.v_offset, d * sizeof(float));
        }
      }
      auto visible = [&](int64_t pos, int64_t j) {
        return positions[j] <= pos && (p.window <= 0 || positions[j] > pos - p.window);
      };
      for (int64_t i = 0; i < n_q; ++i) {
        const int64_t pos = q_pos[i];
        for (int64_t g = 0; g < group; ++g) {
          const int64_t qh = kh * group + g;
          const float* qv = q + (i * p.num_q_heads + qh) * d;
          float* o = out + (i * p.num_q_heads + qh) * d;
          std::fill(o, o + d, 0.0f);
          float m = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j < n_keys; ++j) {
            if (!visible(pos, j)) continue;
            float s = Dot(qv, keys.data() + j * d, d) * p.scale;
            scores[j] = s;
            m = std::max(m, s);
          }
          if (m == -std::numeric_limits<float>::infinity()) continue;  // no key visible
          double denom = 0.0;
          for (int64_t j = 0; j < n_keys; ++j) {
            if (!visible(pos, j)) continue;
            float e = std::exp(scores[j] - m);
            scores[j] = e;
            denom += e;
          }
          const float inv = static_cast<float>(1.0 / denom);
          float* stats = key_stats != nullptr && i >= stats_from_row
                             ? key_stats + stats_offset[kh]
                             : nullptr;
          for (int64_t j = 0; j < n_keys; ++j) {
            if (!visible(pos, j)) continue;
            const float w = scores[j] * inv;
            if (stats != nullptr) stats[j] += w;
            const float* vv = values.data() + j * d;
            for (int64_t t = 0; t < d; ++t) o[t] += w * vv[t];
          }
        }
      }
    }
  });
}

}  // namespace longview::cpu
