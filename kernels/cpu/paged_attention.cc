#include "kernels/cpu/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/ops.h"

namespace longview::cpu {

void PagedAttention(const AttentionParams& p, const PagedKvView& kv, const RopeTable& rope,
                    const float* q, const int64_t* q_pos, int64_t n_q, int64_t kv_len, float* out) {
  if (n_q <= 0) return;
  const int64_t d = p.head_dim;
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  int64_t min_pos = q_pos[0], max_pos = q_pos[0];
  for (int64_t i = 1; i < n_q; ++i) {
    min_pos = std::min(min_pos, q_pos[i]);
    max_pos = std::max(max_pos, q_pos[i]);
  }
  // Keys any query can see.
  const int64_t lo = p.window > 0 ? std::max<int64_t>(0, min_pos - p.window + 1) : 0;
  const int64_t hi = std::min(kv_len, max_pos + 1);
  const int64_t n_keys = std::max<int64_t>(0, hi - lo);

  ParallelFor(p.num_kv_heads, 1, [&](int64_t h0, int64_t h1) {
    std::vector<float> keys(n_keys * d), values(n_keys * d), scores(n_keys);
    for (int64_t kh = h0; kh < h1; ++kh) {
      // Gather this head's keys (rotated to their positions) and values from the pages.
      for (int64_t j = lo; j < hi; ++j) {
        const int32_t page = kv.block_table[j / kv.page_size];
        const float* base =
            kv.pages + page * kv.page_elements + (j % kv.page_size) * kv.token_stride + kh * d;
        float* kd = keys.data() + (j - lo) * d;
        std::memcpy(kd, base + kv.k_offset, d * sizeof(float));
        rope.Rotate(kd, j);
        std::memcpy(values.data() + (j - lo) * d, base + kv.v_offset, d * sizeof(float));
      }
      for (int64_t i = 0; i < n_q; ++i) {
        const int64_t pos = q_pos[i];
        const int64_t j0 = p.window > 0 ? std::max<int64_t>(lo, pos - p.window + 1) : lo;
        const int64_t j1 = std::min(hi, pos + 1);
        for (int64_t g = 0; g < group; ++g) {
          const int64_t qh = kh * group + g;
          const float* qv = q + (i * p.num_q_heads + qh) * d;
          float* o = out + (i * p.num_q_heads + qh) * d;
          std::fill(o, o + d, 0.0f);
          if (j1 <= j0) continue;
          float m = -std::numeric_limits<float>::infinity();
          for (int64_t j = j0; j < j1; ++j) {
            float s = Dot(qv, keys.data() + (j - lo) * d, d) * p.scale;
            scores[j - lo] = s;
            m = std::max(m, s);
          }
          double denom = 0.0;
          for (int64_t j = j0; j < j1; ++j) {
            float e = std::exp(scores[j - lo] - m);
            scores[j - lo] = e;
            denom += e;
          }
          const float inv = static_cast<float>(1.0 / denom);
          for (int64_t j = j0; j < j1; ++j) {
            const float w = scores[j - lo] * inv;
            const float* vv = values.data() + (j - lo) * d;
            for (int64_t t = 0; t < d; ++t) o[t] += w * vv[t];
          }
        }
      }
    }
  });
}

}  // namespace longview::cpu
