// Layout of one KV page (DESIGN §3): a page holds `page_size` tokens of K and V for every
// layer, contiguous as [layer][k|v][token][kv_head][head_dim], so moving a page between tiers is
// one copy. Keys are stored before RoPE.
//
//   KvLayout layout{.num_layers = 32, .num_kv_heads = 8, .head_dim = 128, .page_size = 16};
//   size_t off = layout.Offset(/*layer=*/3, KvLayout::kValue, /*token=*/5, /*head=*/2);
#pragma once

#include <cstddef>
#include <cstdint>

namespace longview {

struct KvLayout {
  static constexpr int kKey = 0;
  static constexpr int kValue = 1;

  int64_t num_layers = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t page_size = 16;

  // Elements between consecutive tokens, K/V halves, layers and pages.
  int64_t TokenStride() const { return num_kv_heads * head_dim; }
  int64_t KvStride() const { return page_size * TokenStride(); }
  int64_t LayerStride() const { return 2 * KvStride(); }
  int64_t PageElements() const { return num_layers * LayerStride(); }

  // Offset of (layer, k|v, token-in-page, kv head) inside a page, in elements.
  int64_t Offset(int64_t layer, int kv, int64_t token, int64_t head) const {
    return layer * LayerStride() + kv * KvStride() + token * TokenStride() + head * head_dim;
  }
};

}  // namespace longview
