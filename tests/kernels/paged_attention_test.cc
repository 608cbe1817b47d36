// PagedAttention (CPU) against a dense attention computed in double from unpaged inputs: random
// inputs with a logged seed, odd sizes, several page sizes, GQA groups, head dims and windows,
// pages scattered in the pool.
#include "kernels/cpu/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/attention_reference.h"

namespace longview::cpu {
namespace {

struct Case {
  int64_t kv_len, n_q, page_size, num_q_heads, num_kv_heads, head_dim, window;
};

void RunCase(const Case& c, uint32_t seed) {
  SCOPED_TRACE(::testing::Message()
               << "seed " << seed << " kv_len " << c.kv_len << " n_q " << c.n_q << " page "
               << c.page_size << " heads " << c.num_q_heads << "/" << c.num_kv_heads << " hd "
               << c.head_dim << " window " << c.window);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t d = c.head_dim, tok_stride = c.num_kv_heads * d;
  const int64_t num_blocks = (c.kv_len + c.page_size - 1) / c.page_size;
  // Pool with an extra layer before ours, so layer offsets matter; pages in shuffled order.
  const int64_t layers = 2, layer = 1;
  const int64_t page_elements = layers * 2 * c.page_size * tok_stride;
  std::vector<int32_t> table(num_blocks);
  std::iota(table.begin(), table.end(), 0);
  std::shuffle(table.begin(), table.end(), rng);
  std::vector<float> pool(page_elements * num_blocks);
  for (auto& v : pool) v = normal(rng);
  PagedKvView view{.pages = pool.data(),
                   .page_elements = page_elements,
                   .k_offset = layer * 2 * c.page_size * tok_stride,
                   .v_offset = layer * 2 * c.page_size * tok_stride + c.page_size * tok_stride,
                   .token_stride = tok_stride,
                   .page_size = c.page_size,
                   .block_table = table.data(),
                   .num_blocks = num_blocks};
  RopeParams rp;
  rp.head_dim = d;
  rp.theta = 10000.0;
  std::vector<float> inv = InvFrequencies(rp);
  RopeTable rope(inv, d);
  rope.Reserve(c.kv_len / 2);  // half from the table, half computed on the fly

  std::vector<float> q(c.n_q * c.num_q_heads * d);
  for (auto& v : q) v = normal(rng);
  std::vector<int64_t> q_pos(c.n_q);
  for (int64_t i = 0; i < c.n_q; ++i) q_pos[i] = c.kv_len - c.n_q + i;
  AttentionParams ap{.num_q_heads = c.num_q_heads,
                     .num_kv_heads = c.num_kv_heads,
                     .head_dim = d,
                     .scale = 1.0f / std::sqrt(static_cast<float>(d)),
                     .window = c.window};
  std::vector<float> out(q.size(), std::nanf(""));
  PagedAttention(ap, view, rope, q.data(), q_pos.data(), c.n_q, c.kv_len, out.data());

  auto key_at = [&](int64_t j, int64_t kh, int64_t off) {
    return pool.data() + table[j / c.page_size] * page_elements + off +
           (j % c.page_size) * tok_stride + kh * d;
  };
  test::ErrorStats stats;
  const int64_t group = c.num_q_heads / c.num_kv_heads;
  for (int64_t i = 0; i < c.n_q; ++i) {
    for (int64_t h = 0; h < c.num_q_heads; ++h) {
      const int64_t kh = h / group;
      std::vector<double> qd(q.begin() + (i * c.num_q_heads + h) * d,
                             q.begin() + (i * c.num_q_heads + h + 1) * d);
      std::vector<double> scores;
      std::vector<const float*> values;
      for (int64_t j = 0; j <= q_pos[i]; ++j) {
        if (c.window > 0 && j <= q_pos[i] - c.window) continue;
        const float* kp = key_at(j, kh, view.k_offset);
        std::vector<double> k(kp, kp + d);
        test::RotateRef(k, j, inv);
        double s = 0;
        for (int64_t t = 0; t < d; ++t) s += qd[t] * k[t];
        scores.push_back(s / std::sqrt(static_cast<double>(d)));
        values.push_back(key_at(j, kh, view.v_offset));
      }
      std::vector<double> acc = test::SoftmaxWeightedSum(std::move(scores), values, d);
      for (int64_t t = 0; t < d; ++t) {
        double got = out[(i * c.num_q_heads + h) * d + t];
        ASSERT_FALSE(std::isnan(got)) << "output not written";
        stats.Add(got, acc[t]);
      }
    }
  }
  stats.Expect();
}

TEST(PagedAttentionTest, MatchesDenseReference) {
  const uint32_t seed = 20261126;
  std::vector<Case> cases = {
      {17, 17, 1, 4, 2, 64, 0},  {54, 54, 8, 8, 2, 128, 0}, {97, 5, 16, 6, 2, 64, 0},
      {97, 1, 16, 4, 4, 128, 0}, {54, 1, 8, 8, 1, 64, 0},   {97, 97, 16, 4, 2, 64, 16},
      {97, 3, 8, 4, 2, 128, 40}, {17, 17, 1, 2, 1, 16, 5},  {200, 30, 16, 4, 2, 32, 64},
  };
  for (size_t i = 0; i < cases.size(); ++i) RunCase(cases[i], seed + static_cast<uint32_t>(i));
}

}  // namespace
}  // namespace longview::cpu
