// Keys of one layer in shuffled pages, for tests of key selection (HiP's pruning): write a
// token's key with Key(token, head), read them through View().
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/paged_attention.h"

namespace longview::test {

// A one-layer page pool holding keys of `num_tokens` tokens, pages in shuffled order.
struct KeyPool {
  int64_t page_size, num_kv_heads, head_dim, num_tokens;
  std::vector<float> pages;
  std::vector<int32_t> table;

  KeyPool(int64_t ps, int64_t nkv, int64_t d, int64_t n, std::mt19937& rng)
      : page_size(ps), num_kv_heads(nkv), head_dim(d), num_tokens(n) {
    const int64_t num_pages = (n + ps - 1) / ps;
    pages.assign(num_pages * PageElements(), 0.0f);
    table.resize(num_pages);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
  }
  int64_t PageElements() const { return 2 * page_size * num_kv_heads * head_dim; }
  float* Key(int64_t token, int64_t head) {
    return pages.data() + table[token / page_size] * PageElements() +
           (token % page_size) * num_kv_heads * head_dim + head * head_dim;
  }
  cpu::PagedKvView View() const {
    return {.pages = pages.data(),
            .page_elements = PageElements(),
            .k_offset = 0,
            .v_offset = page_size * num_kv_heads * head_dim,
            .token_stride = num_kv_heads * head_dim,
            .page_size = page_size,
            .block_table = table.data(),
            .num_blocks = static_cast<int64_t>(table.size())};
  }
};

}  // namespace longview::test
