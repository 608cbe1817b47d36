// SelectionAttention (CPU) against attention computed in double from an explicit key list:
// random selections with gaps, keys out of page order, re-assigned positions, per-KV-head spans,
// GQA, odd sizes, page sizes 1/8/16, random inputs with a logged seed. Also the selection
// builders (dense, StreamingLLM sinks + window) span by span, and PagedAttention == the dense
// selection bit for bit.
#include "kernels/cpu/selection_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kv_selection.h"
#include "kernels/cpu/paged_attention.h"
#include "tests/kernels/attention_reference.h"

namespace longview::cpu {
namespace {

struct Case {
  int64_t num_pages, page_size, num_q_heads, num_kv_heads, head_dim, n_q, window;
  bool per_head;
};

// Random spans over random pages: partial pages, gaps in slots and positions, pages reused.
std::vector<KvSpan> RandomSpans(const Case& c, std::mt19937& rng, int64_t* next_pos) {
  std::uniform_int_distribution<int64_t> page(0, c.num_pages - 1), gap(0, 3), nspans(1, 9);
  std::vector<KvSpan> spans;
  int64_t pos = gap(rng);
  for (int64_t n = nspans(rng); n > 0; --n) {
    const int64_t first = std::uniform_int_distribution<int64_t>(0, c.page_size - 1)(rng);
    const int64_t count = std::uniform_int_distribution<int64_t>(1, c.page_size - first)(rng);
    spans.push_back({.page_id = static_cast<int32_t>(page(rng)),
                     .first_slot = static_cast<int32_t>(first),
                     .count = static_cast<int32_t>(count),
                     .first_position = pos});
    pos += count + gap(rng);
  }
  *next_pos = std::max(*next_pos, pos);
  return spans;
}

void RunCase(const Case& c, uint32_t seed) {
  SCOPED_TRACE(::testing::Message()
               << "seed " << seed << " pages " << c.num_pages << " page " << c.page_size
               << " heads " << c.num_q_heads << "/" << c.num_kv_heads << " hd " << c.head_dim
               << " n_q " << c.n_q << " window " << c.window << " per_head " << c.per_head);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t d = c.head_dim, tok_stride = c.num_kv_heads * d;
  const int64_t layers = 3, layer = 2;
  const int64_t page_elements = layers * 2 * c.page_size * tok_stride;
  std::vector<float> pool(page_elements * c.num_pages);
  for (auto& v : pool) v = normal(rng);
  PagedKvView view{.pages = pool.data(),
                   .page_elements = page_elements,
                   .k_offset = layer * 2 * c.page_size * tok_stride,
                   .v_offset = layer * 2 * c.page_size * tok_stride + c.page_size * tok_stride,
                   .token_stride = tok_stride,
                   .page_size = c.page_size};
  KvSelection sel;
  int64_t max_pos = 0;
  if (c.per_head) {
    for (int64_t kh = 0; kh < c.num_kv_heads; ++kh) {
      sel.head_begin.push_back(static_cast<int32_t>(sel.spans.size()));
      for (const KvSpan& s : RandomSpans(c, rng, &max_pos)) sel.spans.push_back(s);
    }
    sel.head_begin.push_back(static_cast<int32_t>(sel.spans.size()));
  } else {
    sel.spans = RandomSpans(c, rng, &max_pos);
  }
  RopeParams rp;
  rp.head_dim = d;
  std::vector<float> inv = InvFrequencies(rp);
  RopeTable rope(inv, d);
  rope.Reserve(max_pos / 2);

  std::vector<float> q(c.n_q * c.num_q_heads * d);
  for (auto& v : q) v = normal(rng);
  // Query positions around the keys: some see every key, some only a prefix, some none.
  std::vector<int64_t> q_pos(c.n_q);
  std::uniform_int_distribution<int64_t> qp(-1, max_pos + 2);
  for (auto& p : q_pos) p = qp(rng);
  q_pos[0] = max_pos + 5;
  AttentionParams ap{.num_q_heads = c.num_q_heads,
                     .num_kv_heads = c.num_kv_heads,
                     .head_dim = d,
                     .scale = 1.0f / std::sqrt(static_cast<float>(d)),
                     .window = c.window};
  std::vector<float> out(q.size(), std::nanf(""));
  // Per-key attention of the later half of the rows (KV policies' statistics).
  std::vector<int64_t> stats_offset(c.num_kv_heads + 1, 0);
  for (int64_t kh = 0; kh < c.num_kv_heads; ++kh) {
    stats_offset[kh + 1] = stats_offset[kh] + sel.NumKeys(kh);
  }
  const int64_t stats_from = c.n_q / 2;
  std::vector<float> key_stats(stats_offset.back(), 0.0f);
  SelectionAttention(ap, view, rope, sel, q.data(), q_pos.data(), c.n_q, out.data(),
                     key_stats.data(), stats_from);
  std::vector<double> want_stats(key_stats.size(), 0.0);

  test::ErrorStats stats;
  const int64_t group = c.num_q_heads / c.num_kv_heads;
  for (int64_t i = 0; i < c.n_q; ++i) {
    for (int64_t h = 0; h < c.num_q_heads; ++h) {
      const int64_t kh = h / group;
      std::vector<double> qd(q.begin() + (i * c.num_q_heads + h) * d,
                             q.begin() + (i * c.num_q_heads + h + 1) * d);
      std::vector<double> scores;
      std::vector<const float*> vals;
      std::vector<int64_t> key_index;  // of each visible key in the head's spans
      int64_t j = -1;
      for (const KvSpan& s : sel.ForHead(kh)) {
        for (int64_t t = 0; t < s.count; ++t) {
          ++j;
          const int64_t kpos = s.first_position + t;
          if (kpos > q_pos[i] || (c.window > 0 && kpos <= q_pos[i] - c.window)) continue;
          key_index.push_back(j);
          const float* base =
              pool.data() + s.page_id * page_elements + (s.first_slot + t) * tok_stride + kh * d;
          std::vector<double> k(base + view.k_offset, base + view.k_offset + d);
          test::RotateRef(k, kpos, inv);
          double dot = 0;
          for (int64_t e = 0; e < d; ++e) dot += qd[e] * k[e];
          scores.push_back(dot / std::sqrt(static_cast<double>(d)));
          vals.push_back(base + view.v_offset);
        }
      }
      if (i >= stats_from && !scores.empty()) {
        const double m = *std::max_element(scores.begin(), scores.end());
        double z = 0;
        for (double s : scores) z += std::exp(s - m);
        for (size_t k = 0; k < scores.size(); ++k) {
          want_stats[stats_offset[kh] + key_index[k]] += std::exp(scores[k] - m) / z;
        }
      }
      std::vector<double> acc = test::SoftmaxWeightedSum(std::move(scores), vals, d);
      for (int64_t e = 0; e < d; ++e) {
        double got = out[(i * c.num_q_heads + h) * d + e];
        ASSERT_FALSE(std::isnan(got)) << "output not written";
        stats.Add(got, acc[e]);
      }
    }
  }
  stats.Expect();
  for (size_t k = 0; k < key_stats.size(); ++k) {
    EXPECT_NEAR(key_stats[k], want_stats[k], 1e-4 * (1 + want_stats[k])) << "key " << k;
  }
}

TEST(SelectionAttentionTest, MatchesDoubleReferenceOnRandomSelections) {
  const uint32_t seed = 20261127;
  std::vector<Case> cases = {
      {17, 1, 4, 2, 64, 17, 0, false}, {9, 8, 8, 2, 128, 5, 0, true},
      {7, 16, 6, 2, 64, 3, 0, false},  {7, 16, 4, 4, 128, 1, 0, true},
      {54, 1, 8, 1, 64, 9, 13, false}, {11, 8, 4, 2, 32, 7, 20, true},
      {5, 16, 2, 1, 16, 97, 0, false}, {13, 8, 6, 3, 64, 4, 5, true},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    for (uint32_t rep = 0; rep < 4; ++rep) {
      RunCase(cases[i], seed + static_cast<uint32_t>(i * 16 + rep));
    }
  }
}

TEST(KvSelectionTest, TokenRangesSplitAtPageBoundaries) {
  const std::vector<int32_t> table = {7, 3, 9, 4};
  KvSelection sel;
  AppendTokenRange(table, 4, 3, 7, 100, sel);  // tokens 3..9
  ASSERT_EQ(sel.spans.size(), 3u);
  EXPECT_EQ(sel.spans[0].page_id, 7);
  EXPECT_EQ(sel.spans[0].first_slot, 3);
  EXPECT_EQ(sel.spans[0].count, 1);
  EXPECT_EQ(sel.spans[0].first_position, 100);
  EXPECT_EQ(sel.spans[1].page_id, 3);
  EXPECT_EQ(sel.spans[1].first_slot, 0);
  EXPECT_EQ(sel.spans[1].count, 4);
  EXPECT_EQ(sel.spans[1].first_position, 101);
  EXPECT_EQ(sel.spans[2].page_id, 9);
  EXPECT_EQ(sel.spans[2].count, 2);
  EXPECT_EQ(sel.spans[2].first_position, 105);
  EXPECT_EQ(sel.NumKeys(0), 7);
}

TEST(KvSelectionTest, SinkWindowReassignsPositions) {
  // Page size 4, sinks 2, window 5, query at token 20: tokens 0,1 at positions 0,1, then tokens
  // 16..20 at positions 2..6; the query's position is 6. Released pages (-1) are never read.
  const std::vector<int32_t> table = {10, -1, -1, -1, 14, 15};
  int64_t qpos = -1;
  KvSelection sel = SinkWindowSelection(table, 4, 20, 2, 5, &qpos);
  EXPECT_EQ(qpos, 6);
  ASSERT_EQ(sel.spans.size(), 3u);
  EXPECT_EQ(sel.spans[0].page_id, 10);
  EXPECT_EQ(sel.spans[0].count, 2);
  EXPECT_EQ(sel.spans[0].first_position, 0);
  EXPECT_EQ(sel.spans[1].page_id, 14);
  EXPECT_EQ(sel.spans[1].first_slot, 0);
  EXPECT_EQ(sel.spans[1].count, 4);
  EXPECT_EQ(sel.spans[1].first_position, 2);
  EXPECT_EQ(sel.spans[2].page_id, 15);
  EXPECT_EQ(sel.spans[2].first_slot, 0);
  EXPECT_EQ(sel.spans[2].count, 1);
  EXPECT_EQ(sel.spans[2].first_position, 6);
}

TEST(KvSelectionTest, SinkWindowBeforeEvictionIsDense) {
  const std::vector<int32_t> table = {5, 2, 8, 1};
  for (int64_t t = 0; t < 16; ++t) {
    int64_t qpos = -1;
    // sinks + window > t: nothing has left the window yet.
    KvSelection sw = SinkWindowSelection(table, 4, t, 4, 12, &qpos);
    KvSelection dense = DenseSelection(table, 4, t + 1);
    EXPECT_EQ(qpos, t);
    ASSERT_EQ(sw.NumKeys(0), dense.NumKeys(0)) << "t " << t;
    std::vector<std::pair<int64_t, int64_t>> a, b;  // (page*4 + slot, position) per key
    for (const KvSpan& s : sw.spans) {
      for (int i = 0; i < s.count; ++i)
        a.push_back({s.page_id * 4 + s.first_slot + i, s.first_position + i});
    }
    for (const KvSpan& s : dense.spans) {
      for (int i = 0; i < s.count; ++i)
        b.push_back({s.page_id * 4 + s.first_slot + i, s.first_position + i});
    }
    EXPECT_EQ(a, b) << "t " << t;
  }
}

TEST(SelectionAttentionTest, PagedAttentionIsTheDenseSelectionBitForBit) {
  std::mt19937 rng(77);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t ps = 8, kv_len = 45, n_q = 6, nh = 4, nkv = 2, d = 32;
  const int64_t tok = nkv * d, page_elements = 2 * ps * tok, num_blocks = 6;
  std::vector<int32_t> table = {3, 0, 5, 1, 4, 2};
  std::vector<float> pool(page_elements * num_blocks), q(n_q * nh * d);
  for (auto& v : pool) v = normal(rng);
  for (auto& v : q) v = normal(rng);
  PagedKvView view{.pages = pool.data(),
                   .page_elements = page_elements,
                   .k_offset = 0,
                   .v_offset = ps * tok,
                   .token_stride = tok,
                   .page_size = ps,
                   .block_table = table.data(),
                   .num_blocks = num_blocks};
  RopeParams rp;
  rp.head_dim = d;
  RopeTable rope(InvFrequencies(rp), d);
  std::vector<int64_t> q_pos(n_q);
  for (int64_t i = 0; i < n_q; ++i) q_pos[i] = kv_len - n_q + i;
  for (int64_t window : {0, 7}) {
    AttentionParams ap{.num_q_heads = nh,
                       .num_kv_heads = nkv,
                       .head_dim = d,
                       .scale = 1.0f / std::sqrt(static_cast<float>(d)),
                       .window = window};
    std::vector<float> a(q.size()), b(q.size());
    PagedAttention(ap, view, rope, q.data(), q_pos.data(), n_q, kv_len, a.data());
    SelectionAttention(ap, view, rope, DenseSelection(table, ps, kv_len), q.data(), q_pos.data(),
                       n_q, b.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << "window " << window;
  }
}

}  // namespace
}  // namespace longview::cpu
