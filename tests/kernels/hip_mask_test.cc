// HiP's hierarchical pruning (kernels/cpu/hip_mask.h): against a recursive double-precision
// rendering of the rule on random keys (several shapes, shuffled pages, GQA, partial chunks);
// a smooth bump of attention found through all three stages by every head at its own place;
// the counts each stage keeps; everything kept when the candidates fit; ties to the earliest.
#include "kernels/cpu/hip_mask.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/key_pool.h"

namespace longview::cpu {
namespace {

using Pool = test::KeyPool;

std::vector<float> InvFreq(int64_t d) { return InvFrequencies({.head_dim = d, .theta = 10000.0}); }

// The rule again, recursively and in double: a descent per query head, relative RoPE (or
// chunk-indexed: probe keys at their chunk's rank, query i at min(its position, scan chunks +
// scan window)).
struct Oracle {
  const HipMaskParams& p;
  Pool& pool;
  const RopeTable& rope;
  std::vector<float> q;
  int64_t n_q;
  int64_t stride = 1;  // query i stands at first_query_position + i * stride

  // This oracle with its queries averaged in groups of `size` (the last one may be shorter).
  Oracle Pooled(int64_t size) const {
    if (size <= 1 || n_q <= 1) return *this;
    const int64_t row = p.num_q_heads * p.head_dim, groups = (n_q + size - 1) / size;
    std::vector<float> pooled(groups * row);
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t count = std::min(size, n_q - g * size);
      for (int64_t j = 0; j < row; ++j) {
        double sum = 0;
        for (int64_t i = g * size; i < g * size + count; ++i) sum += q[i * row + j];
        pooled[g * row + j] = static_cast<float>(sum / count);
      }
    }
    return Oracle{p, pool, rope, pooled, groups, size};
  }

  double Score(int64_t qh, int64_t t, int64_t key_pos, int64_t scan_chunks) const {
    const int64_t kh = qh / (p.num_q_heads / p.num_kv_heads);
    std::vector<float> k(pool.Key(t, kh), pool.Key(t, kh) + p.head_dim);
    rope.Rotate(k.data(), key_pos);
    double best = -1e300;
    for (int64_t i = 0; i < n_q; ++i) {
      std::vector<float> qv(&q[(i * p.num_q_heads + qh) * p.head_dim],
                            &q[(i * p.num_q_heads + qh + 1) * p.head_dim]);
      rope.Rotate(qv.data(), p.chunk_indexed ? std::min(p.first_query_position + i * stride,
                                                        scan_chunks + p.scan_window)
                                             : p.query_position);
      double s = 0;
      for (int64_t j = 0; j < p.head_dim; ++j) s += static_cast<double>(qv[j]) * k[j];
      best = std::max(best, s);
    }
    return best;
  }
  // The largest probe score of the descent over [b, e), the rank-th chunk of its stage.
  double Descend(int64_t qh, int64_t b, int64_t e, int64_t rank, int64_t scan_chunks) const {
    const int64_t lp = p.chunk_indexed ? rank : 0, rp = p.chunk_indexed ? rank : 1;
    if (e - b == 1) return std::max(Score(qh, b, lp, scan_chunks), Score(qh, b, rp, scan_chunks));
    const int64_t m = b + (e - b) / 2;
    const double l = Score(qh, b + (m - b) / 2, lp, scan_chunks),
                 r = Score(qh, m + (e - m) / 2, rp, scan_chunks);
    return std::max({l, r, l > r ? Descend(qh, b, m, rank, scan_chunks)
                                 : Descend(qh, m, e, rank, scan_chunks)});
  }
  HipHeadRanges Stage(const HipStage& s, const HipHeadRanges& in, int64_t scan_chunks = 0) const {
    if (s.pool > 1 && n_q > 1) return Pooled(s.pool).Stage({s.chunk, s.keep}, in, scan_chunks);
    const int64_t group = p.num_q_heads / p.num_kv_heads;
    HipHeadRanges out(p.num_kv_heads);
    for (int64_t h = 0; h < p.num_kv_heads; ++h) {
      std::vector<HipRange> chunks;
      for (const HipRange& r : in[h]) {
        for (int64_t b = r.begin; b < r.end; b += s.chunk) chunks.push_back({b, std::min(r.end, b + s.chunk)});
      }
      const size_t n_keep = static_cast<size_t>(s.keep / s.chunk);
      if (chunks.size() <= n_keep) {
        out[h] = chunks;
        continue;
      }
      const int64_t h0 = p.share_heads ? 0 : h * group;
      const int64_t h1 = p.share_heads ? p.num_q_heads : (h + 1) * group;
      std::vector<std::pair<double, size_t>> scored;
      for (size_t c = 0; c < chunks.size(); ++c) {
        double best = -1e300;
        for (int64_t qh = h0; qh < h1; ++qh) {
          best = std::max(best, Descend(qh, chunks[c].begin, chunks[c].end,
                                        static_cast<int64_t>(c), scan_chunks));
        }
        scored.push_back({-best, c});
      }
      std::sort(scored.begin(), scored.end());
      std::vector<size_t> idx;
      for (size_t i = 0; i < n_keep; ++i) idx.push_back(scored[i].second);
      std::sort(idx.begin(), idx.end());
      for (size_t c : idx) out[h].push_back(chunks[c]);
    }
    return out;
  }
};

int64_t Tokens(const std::vector<HipRange>& ranges) {
  int64_t n = 0;
  for (const HipRange& r : ranges) n += r.end - r.begin;
  return n;
}

TEST(HipMaskTest, EqualsTheRuleInDoubleOnRandomKeys) {
  struct Case {
    int64_t page_size, nq, nkv, d, n_q, tokens, begin;
    std::vector<HipStage> stages;
  };
  const std::vector<Case> cases = {
      {16, 4, 2, 16, 1, 1000, 4, {{64, 256, 4}, {16, 96, 4}, {4, 32}}},
      {7, 6, 3, 8, 5, 777, 0, {{32, 320, 4}, {8, 64}}},  // groups of 4 and 1
      {64, 2, 2, 32, 3, 4099, 256, {{256, 1024}, {32, 256}, {8, 64}}},
      {1, 8, 1, 16, 2, 300, 10, {{16, 64}, {3, 12}}},
      {8, 4, 4, 16, 64, 900, 8, {{64, 320, 4}, {16, 128, 4}, {4, 48}}},  // a prompt block
  };
  uint32_t seed = 11;
  int schemes_differ = 0;  // cases where chunk-indexed RoPE kept other chunks than relative
  int pools_differ = 0;    // cases where pooled queries kept other chunks than all of them
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "tokens " << c.tokens << " seed " << seed);
    std::mt19937 rng(seed++);
    std::normal_distribution<float> normal;
    Pool pool(c.page_size, c.nkv, c.d, c.tokens, rng);
    for (float& v : pool.pages) v = normal(rng);
    std::vector<float> q(c.n_q * c.nq * c.d);
    for (float& v : q) v = normal(rng);
    RopeTable rope(InvFreq(c.d), c.d);
    HipHeadRanges relative;
    for (int mode = 0; mode < 3; ++mode) {
    const bool share = mode != 0, chunk_indexed = mode == 2;
    SCOPED_TRACE(::testing::Message() << "share_heads " << share << " chunk_indexed "
                                      << chunk_indexed);
    // Chunk-indexed: queries at 45, 46, ... up to each stage's cap (52 in stage 0).
    const HipMaskParams p{.num_q_heads = c.nq, .num_kv_heads = c.nkv, .head_dim = c.d,
                          .share_heads = share, .query_position = 100 + c.d,
                          .chunk_indexed = chunk_indexed, .first_query_position = 45,
                          .scan_window = 12, .first_stage_chunks = 40};
    const HipRange middle{c.begin, c.tokens - 17};
    const Oracle oracle{p, pool, rope, q, c.n_q};
    HipHeadRanges want(c.nkv, std::vector<HipRange>{middle});
    HipHeadRanges got = want;
    for (size_t i = 0; i < c.stages.size(); ++i) {
      const HipStage& s = c.stages[i];
      const int64_t scan_chunks = HipScanChunks(p, c.stages, i);
      EXPECT_EQ(scan_chunks, i == 0 ? 40 : c.stages[i - 1].keep / s.chunk);
      want = oracle.Stage(s, want, scan_chunks);
      got = HipRefineStage(p, pool.View(), rope, q.data(), c.n_q, s, got, scan_chunks);
      ASSERT_EQ(got, want) << "stage chunk " << s.chunk;
      for (int64_t h = 0; h < c.nkv; ++h) {
        EXPECT_EQ(static_cast<int64_t>(got[h].size()), s.keep / s.chunk);
        EXPECT_LE(Tokens(got[h]), s.keep);
      }
    }
    EXPECT_EQ(HipSelect(p, pool.View(), rope, q.data(), c.n_q, c.stages, middle), got);
    for (int64_t h = 1; h < c.nkv && share; ++h) EXPECT_EQ(got[h], got[0]);
    if (mode == 1) {
      relative = got;
      std::vector<HipStage> unpooled = c.stages;
      for (HipStage& st : unpooled) st.pool = 1;
      pools_differ += HipSelect(p, pool.View(), rope, q.data(), c.n_q, unpooled, middle) != got;
    }
    if (mode == 2) schemes_differ += got != relative;
    }
  }
  EXPECT_GT(schemes_differ, 0);
  EXPECT_GT(pools_differ, 0);
}

// Keys that lean towards the query (under the pruning's relative RoPE) in a smooth bump around a
// head's own peak: the descent climbs it in every stage, and the final chunks hold the peak. With
// share_heads every KV head keeps the chunks of the strongest bump.
TEST(HipMaskTest, EveryHeadFindsItsBumpThroughAllStages) {
  const int64_t d = 32, nkv = 4, nq = 8, tokens = 20000, ps = 16;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  Pool pool(ps, nkv, d, tokens, rng);
  RopeTable rope(InvFreq(d), d);
  std::vector<float> q(nq * d);
  for (float& v : q) v = normal(rng);
  const std::vector<int64_t> peak = {3333, 9001, 15555, 600};
  const std::vector<double> height = {3.0, 3.0, 6.0, 3.0};
  const HipMaskParams per_group{.num_q_heads = nq, .num_kv_heads = nkv, .head_dim = d,
                                .share_heads = false};
  for (int64_t h = 0; h < nkv; ++h) {
    // The group's first query head, turned by the distance the pruning puts between them.
    std::vector<float> dir(&q[(h * (nq / nkv)) * d], &q[(h * (nq / nkv) + 1) * d]);
    rope.Rotate(dir.data(), per_group.query_position - 1);
    for (int64_t t = 0; t < tokens; ++t) {
      const double x = static_cast<double>(t - peak[h]) / 300.0;
      const double bump = height[h] * std::exp(-x * x) / std::sqrt(static_cast<double>(d));
      for (int64_t j = 0; j < d; ++j) pool.Key(t, h)[j] = 0.3f * normal(rng) + bump * dir[j];
    }
  }
  const std::vector<HipStage> stages = {{256, 4096}, {32, 1024}, {8, 128}};
  auto near = [](const std::vector<HipRange>& ranges, int64_t at) {
    EXPECT_EQ(ranges.size(), 16u);
    EXPECT_TRUE(std::any_of(ranges.begin(), ranges.end(), [&](const HipRange& r) {
      return r.begin <= at + 8 && at - 8 < r.end;
    }));
    for (const HipRange& r : ranges) EXPECT_LT(std::abs(r.begin - at), 600) << r.begin;
  };
  const HipHeadRanges got =
      HipSelect(per_group, pool.View(), rope, q.data(), 1, stages, {256, tokens - 1024});
  for (int64_t h = 0; h < nkv; ++h) {
    SCOPED_TRACE(::testing::Message() << "head " << h << " peak " << peak[h]);
    near(got[h], peak[h]);
  }
  HipMaskParams shared = per_group;
  shared.share_heads = true;
  const HipHeadRanges all =
      HipSelect(shared, pool.View(), rope, q.data(), 1, stages, {256, tokens - 1024});
  for (int64_t h = 0; h < nkv; ++h) {
    SCOPED_TRACE(::testing::Message() << "shared, head " << h);
    near(all[h], peak[2]);
  }
}

TEST(HipMaskTest, CandidatesThatFitAreAllKeptInTheStagesChunks) {
  std::mt19937 rng(3);
  Pool pool(8, 1, 8, 200, rng);
  RopeTable rope(InvFreq(8), 8);
  std::vector<float> q(8, 1.0f);
  const HipMaskParams p{.num_q_heads = 1, .num_kv_heads = 1, .head_dim = 8};
  const HipHeadRanges in = {{{5, 40}, {100, 103}}};
  const HipHeadRanges got = HipRefineStage(p, pool.View(), rope, q.data(), 1, {.chunk = 16, .keep = 64}, in);
  const HipHeadRanges want = {{{5, 21}, {21, 37}, {37, 40}, {100, 103}}};
  EXPECT_EQ(got, want);
}

TEST(HipMaskTest, TiesGoToTheEarliestChunks) {
  std::mt19937 rng(3);
  Pool pool(8, 2, 8, 512, rng);  // all keys zero: every score ties
  RopeTable rope(InvFreq(8), 8);
  std::vector<float> q(2 * 8, 1.0f);
  const HipMaskParams p{.num_q_heads = 2, .num_kv_heads = 2, .head_dim = 8};
  const HipHeadRanges got =
      HipSelect(p, pool.View(), rope, q.data(), 1, {{64, 128}, {8, 16}}, {0, 512});
  const std::vector<HipRange> want = {{0, 8}, {8, 16}};
  EXPECT_EQ(got[0], want);
  EXPECT_EQ(got[1], want);
}

}  // namespace
}  // namespace longview::cpu
