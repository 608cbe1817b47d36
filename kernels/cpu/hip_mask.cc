#include "kernels/cpu/hip_mask.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cpu/ops.h"

namespace longview::cpu {
namespace {

// Scores keys of one KV head against the block's queries of its group.
class HeadScorer {
 public:
  HeadScorer(const HipMaskParams& p, const PagedKvView& kv, const RopeTable& rope, const float* q,
             int64_t n_q, int64_t kv_head)
      : kv_(kv), rope_(rope), d_(p.head_dim), kv_head_(kv_head), key_(p.head_dim) {
    const int64_t group = p.num_q_heads / p.num_kv_heads;
    queries_.reserve(n_q * group);
    for (int64_t i = 0; i < n_q; ++i) {
      for (int64_t g = 0; g < group; ++g) {
        queries_.push_back(q + (i * p.num_q_heads + kv_head * group + g) * d_);
      }
    }
  }

  // max over the queries of q · k_token, k rotated to position `token`.
  float Score(int64_t token) {
    const int32_t page = kv_.block_table[token / kv_.page_size];
    const float* k = kv_.pages + page * kv_.page_elements + kv_.k_offset +
                     (token % kv_.page_size) * kv_.token_stride + kv_head_ * d_;
    std::memcpy(key_.data(), k, d_ * sizeof(float));
    rope_.Rotate(key_.data(), token);
    float best = -std::numeric_limits<float>::infinity();
    for (const float* qv : queries_) best = std::max(best, Dot(qv, key_.data(), d_));
    return best;
  }

  // The binary descent over [begin, end): the score of the key it ends on.
  float ChunkScore(int64_t begin, int64_t end) {
    while (end - begin > 1) {
      const int64_t mid = begin + (end - begin) / 2;
      const float left = Score(mid - begin == 1 ? begin : HipProbe(begin, mid));
      const float right = Score(end - mid == 1 ? mid : HipProbe(mid, end));
      if (left >= right) {
        end = mid;
      } else {
        begin = mid;
      }
    }
    return Score(begin);
  }

 private:
  const PagedKvView& kv_;
  const RopeTable& rope_;
  int64_t d_, kv_head_;
  std::vector<const float*> queries_;
  std::vector<float> key_;
};

}  // namespace

HipHeadRanges HipRefineStage(const HipMaskParams& params, const PagedKvView& kv,
                             const RopeTable& rope, const float* q, int64_t n_q,
                             const HipStageParams& stage, const HipHeadRanges& candidates) {
  HipHeadRanges kept(params.num_kv_heads);
  const int64_t max_chunks = std::max<int64_t>(1, stage.keep / stage.chunk);
  ParallelFor(params.num_kv_heads, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      // Cut every candidate range into chunks.
      std::vector<HipRange> chunks;
      int64_t tokens = 0;
      for (const HipRange& r : candidates[h]) {
        tokens += r.end - r.begin;
        for (int64_t b = r.begin; b < r.end; b += stage.chunk) {
          chunks.push_back({b, std::min(r.end, b + stage.chunk)});
        }
      }
      std::vector<HipRange>& out = kept[h];
      if (tokens <= stage.keep || static_cast<int64_t>(chunks.size()) <= max_chunks) {
        out = std::move(chunks);
      } else {
        HeadScorer scorer(params, kv, rope, q, n_q, h);
        std::vector<std::pair<float, int64_t>> scored(chunks.size());  // (score, chunk index)
        for (size_t c = 0; c < chunks.size(); ++c) {
          scored[c] = {scorer.ChunkScore(chunks[c].begin, chunks[c].end), c};
        }
        std::partial_sort(scored.begin(), scored.begin() + max_chunks, scored.end(),
                          [](const auto& a, const auto& b) {
                            return a.first != b.first ? a.first > b.first : a.second < b.second;
                          });
        std::vector<int64_t> index(max_chunks);
        for (int64_t i = 0; i < max_chunks; ++i) index[i] = scored[i].second;
        std::sort(index.begin(), index.end());
        out.reserve(max_chunks);
        for (int64_t c : index) out.push_back(chunks[c]);
      }
    }
  });
  return kept;
}

HipHeadRanges HipSelect(const HipMaskParams& params, const PagedKvView& kv, const RopeTable& rope,
                        const float* q, int64_t n_q, const std::vector<HipStageParams>& stages,
                        HipRange middle) {
  HipHeadRanges ranges(params.num_kv_heads);
  if (middle.end > middle.begin) {
    for (auto& r : ranges) r.push_back(middle);
  }
  for (const HipStageParams& stage : stages) {
    ranges = HipRefineStage(params, kv, rope, q, n_q, stage, ranges);
  }
  return ranges;
}

}  // namespace longview::cpu
