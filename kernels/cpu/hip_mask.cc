#include "kernels/cpu/hip_mask.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cpu/ops.h"

namespace longview::cpu {
namespace {

// Scores keys for one query head: the block's queries against its KV head's keys, at the
// scheme's positions (relative: queries at params.query_position, keys at 0 (left probes) or
// 1 (right probes); chunk-indexed: queries at min(own, scan_chunks + scan_window), keys at
// their chunk's rank).
class HeadScorer {
 public:
  // Query i stands at first_query_position + i * stride (chunk-indexed).
  HeadScorer(const HipMaskParams& p, const PagedKvView& kv, const RopeTable& rope, const float* q,
             int64_t n_q, int64_t stride, int64_t q_head, int64_t scan_chunks)
      : kv_(kv), rope_(rope), d_(p.head_dim),
        kv_head_(q_head / (p.num_q_heads / p.num_kv_heads)), chunk_indexed_(p.chunk_indexed),
        queries_(n_q * p.head_dim), key_(p.head_dim) {
    for (int64_t i = 0; i < n_q; ++i) {
      float* qi = queries_.data() + i * d_;
      std::memcpy(qi, q + (i * p.num_q_heads + q_head) * d_, d_ * sizeof(float));
      rope_.Rotate(qi, p.chunk_indexed ? std::min(p.first_query_position + i * stride,
                                                  scan_chunks + p.scan_window)
                                       : p.query_position);
    }
  }

  // max over the queries of q · k_token, k rotated to position `key_position`.
  float Score(int64_t token, int64_t key_position) {
    const int32_t page = kv_.block_table[token / kv_.page_size];
    const float* k = kv_.pages + page * kv_.page_elements + kv_.k_offset +
                     (token % kv_.page_size) * kv_.token_stride + kv_head_ * d_;
    std::memcpy(key_.data(), k, d_ * sizeof(float));
    rope_.Rotate(key_.data(), key_position);
    float best = -std::numeric_limits<float>::infinity();
    for (size_t i = 0; i < queries_.size(); i += d_) {
      best = std::max(best, Dot(queries_.data() + i, key_.data(), d_));
    }
    return best;
  }

  // The binary descent over [begin, end), the `rank`-th chunk of its stage: the largest probe
  // score on its way.
  float ChunkScore(int64_t begin, int64_t end, int64_t rank) {
    const int64_t left_pos = chunk_indexed_ ? rank : 0, right_pos = chunk_indexed_ ? rank : 1;
    float best = -std::numeric_limits<float>::infinity();
    while (end - begin > 1) {
      const int64_t mid = begin + (end - begin) / 2;
      const float left = Score(HipProbe(begin, mid), left_pos);
      const float right = Score(HipProbe(mid, end), right_pos);
      best = std::max({best, left, right});
      if (left > right) {
        end = mid;
      } else {
        begin = mid;
      }
    }
    return std::max({best, Score(begin, left_pos), Score(begin, right_pos)});
  }

 private:
  const PagedKvView& kv_;
  const RopeTable& rope_;
  int64_t d_, kv_head_;
  bool chunk_indexed_;
  std::vector<float> queries_, key_;
};

std::vector<HipRange> Cut(const std::vector<HipRange>& ranges, int64_t chunk, int64_t* tokens) {
  std::vector<HipRange> chunks;
  *tokens = 0;
  for (const HipRange& r : ranges) {
    *tokens += r.end - r.begin;
    for (int64_t b = r.begin; b < r.end; b += chunk) chunks.push_back({b, std::min(r.end, b + chunk)});
  }
  return chunks;
}

// The `n` best chunks by score (ties to the earlier), in order of position.
std::vector<HipRange> Best(const std::vector<HipRange>& chunks, const std::vector<float>& score,
                           int64_t n) {
  std::vector<int64_t> index(chunks.size());
  for (size_t c = 0; c < chunks.size(); ++c) index[c] = static_cast<int64_t>(c);
  std::partial_sort(index.begin(), index.begin() + n, index.end(), [&](int64_t a, int64_t b) {
    return score[a] != score[b] ? score[a] > score[b] : a < b;
  });
  index.resize(n);
  std::sort(index.begin(), index.end());
  std::vector<HipRange> out;
  out.reserve(n);
  for (int64_t c : index) out.push_back(chunks[c]);
  return out;
}

}  // namespace

HipHeadRanges HipRefineStage(const HipMaskParams& params, const PagedKvView& kv,
                             const RopeTable& rope, const float* q, int64_t n_q,
                             const HipStage& stage, const HipHeadRanges& candidates,
                             int64_t scan_chunks) {
  const int64_t nq = params.num_q_heads, nkv = params.num_kv_heads, group = nq / nkv;
  const int64_t max_chunks = std::max<int64_t>(1, stage.keep / stage.chunk);
  // Queries averaged in groups of stage.pool (the last group may be shorter); a group stands
  // at its first query's position.
  const int64_t pool = std::max<int64_t>(1, stage.pool);
  std::vector<float> pooled;
  if (pool > 1 && n_q > 1) {
    const int64_t row = nq * params.head_dim, groups = (n_q + pool - 1) / pool;
    pooled.assign(groups * row, 0.0f);
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t first = g * pool, count = std::min(pool, n_q - first);
      float* out = pooled.data() + g * row;
      for (int64_t i = first; i < first + count; ++i) {
        for (int64_t j = 0; j < row; ++j) out[j] += q[i * row + j];
      }
      for (int64_t j = 0; j < row; ++j) out[j] /= static_cast<float>(count);
    }
    q = pooled.data();
    n_q = groups;
  }
  const int64_t stride = pooled.empty() ? 1 : pool;
  // Chunk scores of query heads [h0, h1) over `chunks`, the max over them into `score`.
  auto score_heads = [&](const std::vector<HipRange>& chunks, int64_t h0, int64_t h1,
                         std::vector<float>& score) {
    score.assign(chunks.size(), -std::numeric_limits<float>::infinity());
    for (int64_t h = h0; h < h1; ++h) {
      HeadScorer scorer(params, kv, rope, q, n_q, stride, h, scan_chunks);
      for (size_t c = 0; c < chunks.size(); ++c) {
        score[c] = std::max(score[c], scorer.ChunkScore(chunks[c].begin, chunks[c].end,
                                                        static_cast<int64_t>(c)));
      }
    }
  };
  HipHeadRanges kept(nkv);
  if (params.share_heads) {
    int64_t tokens = 0;
    std::vector<HipRange> chunks = Cut(candidates[0], stage.chunk, &tokens);
    if (tokens > stage.keep && static_cast<int64_t>(chunks.size()) > max_chunks) {
      std::vector<std::vector<float>> per_head(nq);
      ParallelFor(nq, 1, [&](int64_t h0, int64_t h1) {
        for (int64_t h = h0; h < h1; ++h) score_heads(chunks, h, h + 1, per_head[h]);
      });
      std::vector<float> score = per_head[0];
      for (int64_t h = 1; h < nq; ++h) {
        for (size_t c = 0; c < chunks.size(); ++c) score[c] = std::max(score[c], per_head[h][c]);
      }
      chunks = Best(chunks, score, max_chunks);
    }
    for (auto& k : kept) k = chunks;
    return kept;
  }
  ParallelFor(nkv, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t h = k0; h < k1; ++h) {
      int64_t tokens = 0;
      std::vector<HipRange> chunks = Cut(candidates[h], stage.chunk, &tokens);
      if (tokens > stage.keep && static_cast<int64_t>(chunks.size()) > max_chunks) {
        std::vector<float> score;
        score_heads(chunks, h * group, (h + 1) * group, score);
        chunks = Best(chunks, score, max_chunks);
      }
      kept[h] = std::move(chunks);
    }
  });
  return kept;
}

HipHeadRanges HipSelect(const HipMaskParams& params, const PagedKvView& kv, const RopeTable& rope,
                        const float* q, int64_t n_q, const std::vector<HipStage>& stages,
                        HipRange middle) {
  HipHeadRanges ranges(params.num_kv_heads);
  if (middle.end > middle.begin) {
    for (auto& r : ranges) r.push_back(middle);
  }
  for (size_t i = 0; i < stages.size(); ++i) {
    ranges = HipRefineStage(params, kv, rope, q, n_q, stages[i], ranges,
                            HipScanChunks(params, stages, i));
  }
  return ranges;
}

int64_t HipScanChunks(const HipMaskParams& params, const std::vector<HipStage>& stages, size_t i) {
  return i == 0 ? params.first_stage_chunks : stages[i - 1].keep / stages[i].chunk;
}

}  // namespace longview::cpu
