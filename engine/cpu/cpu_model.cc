#include "engine/cpu/cpu_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"
#include "engine/attention/hip.h"
#include "engine/model/rope_params.h"
#include "kernels/kv_selection.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/paged_attention.h"
#include "kernels/cpu/selection_attention.h"

namespace longview {
namespace {

// Attention of `n` query rows at token indices token[i] when each reads its own selection
// (StreamingLLM: sinks + window, positions re-assigned), so a prefill chunk longer than the window
// still gives every token what decoding it alone would.
void SelectionRowsAttention(const cpu::AttentionParams& params, const cpu::PagedKvView& view,
                        const cpu::RopeTable& rope, std::span<const int32_t> blocks,
                        const AttentionMode& mode, int64_t model_window, const float* q, const int64_t* token, int64_t n,
                        float* out) {
  cpu::AttentionParams ap = params;
  ap.window = 0;  // the selection is the window
  const int64_t q_dim = ap.num_q_heads * ap.head_dim;
  for (int64_t i = 0; i < n; ++i) {
    int64_t q_pos = 0;
    KvSelection sel = mode.SelectKv(blocks, view.page_size, token[i], model_window, &q_pos);
    cpu::SelectionAttention(ap, view, rope, sel, q + i * q_dim, &q_pos, 1, out + i * q_dim);
  }
}

// Mode hip: rows in blocks of block_size; a block whose middle outgrows the layer's top-k
// prunes it with its queries before RoPE (q_raw) and each row reads sinks + the kept chunks + the
// block's window (engine/attention/hip.h); a block before that reads every key. With `masks`, a
// step of one row (decode) prunes through them: stages recomputed on their refresh schedule.
void HipRowsAttention(const cpu::AttentionParams& params, const cpu::PagedKvView& view,
                      const cpu::RopeTable& rope, std::span<const int32_t> blocks,
                      const HipAttention& hip, int64_t layer, int64_t context,
                      HipSequenceMasks* masks, const float* q_raw, const float* q,
                      const int64_t* token, int64_t n, float* out) {
  cpu::AttentionParams ap = params;
  ap.window = 0;  // the selection is the window
  const int64_t q_dim = ap.num_q_heads * ap.head_dim;
  cpu::HipMaskParams mask =
      HipMaskParamsFor(hip, layer, ap.num_q_heads, ap.num_kv_heads, ap.head_dim, context);
  for (int64_t b0 = 0; b0 < n; b0 += hip.block_size) {
    const int64_t rows = std::min(hip.block_size, n - b0);
    if (!HipPrunes(hip, token[b0], layer)) {
      cpu::PagedAttention(ap, view, rope, q + b0 * q_dim, token + b0, rows,
                          token[b0 + rows - 1] + 1, out + b0 * q_dim);
      continue;
    }
    cpu::HipHeadRanges fresh;
    mask.first_query_position = token[b0];
    if (masks == nullptr || n != 1) {
      fresh = cpu::HipSelect(mask, view, rope, q_raw + b0 * q_dim, rows,
                             HipLayerStages(hip, layer), HipMiddle(hip, token[b0]));
    }
    const cpu::HipHeadRanges& kept =
        masks == nullptr || n != 1
            ? fresh
            : HipDecodeMask(hip, layer, mask, view, rope, q_raw, token[0], masks->layers[layer]);
    for (int64_t i = b0; i < b0 + rows; ++i) {
      const KvSelection sel =
          HipRowSelection(hip, blocks, view.page_size, token[b0], token[i], kept);
      cpu::SelectionAttention(ap, view, rope, sel, q + i * q_dim, token + i, 1, out + i * q_dim);
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<CpuModel>> CpuModel::Create(
    const ModelConfig& cfg, std::shared_ptr<const ModelWeights> weights) {
  if (weights == nullptr) return absl::FailedPreconditionError("CpuModel: no host weights");
  if (static_cast<int64_t>(weights->layers.size()) != cfg.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "weights have %d layers, config.json says %d", weights->layers.size(),
        cfg.num_hidden_layers));
  }
  if (static_cast<int64_t>(cfg.layer_window.size()) != cfg.num_hidden_layers) {
    return absl::InvalidArgumentError("config has no per-layer window for every layer");
  }
  return std::unique_ptr<CpuModel>(new CpuModel(cfg, std::move(weights)));
}

CpuModel::CpuModel(const ModelConfig& cfg, std::shared_ptr<const ModelWeights> weights)
    : cfg_(cfg), weights_(std::move(weights)), w_(*weights_), rope_(cpu::InvFrequencies(RopeParamsOf(cfg)), cfg.head_dim) {
  rope_.Reserve(std::min<int64_t>(cfg.max_position_embeddings, 1 << 16));
}

KvLayout CpuModel::kv_layout(int64_t page_size) const {
  return KvLayout{.num_layers = cfg_.num_hidden_layers,
                  .num_kv_heads = cfg_.num_key_value_heads,
                  .head_dim = cfg_.head_dim,
                  .page_size = page_size};
}

absl::Status CpuModel::Forward(const SequenceChunk& chunk, HostKvStorage& kv, bool all_logits,
                               std::vector<float>& logits, const Attention& attention) {
  const int64_t n = static_cast<int64_t>(chunk.tokens.size());
  if (n == 0) return absl::InvalidArgumentError("Forward: no tokens");
  if (chunk.table == nullptr) return absl::InvalidArgumentError("Forward: no block table");
  if (kv.layout().page_size != chunk.table->page_size()) {
    return absl::InvalidArgumentError("Forward: KV pages laid out for another page size");
  }
  const BatchSequence seq{.tokens = chunk.tokens,
                          .start_pos = chunk.start_pos,
                          .block_ids = chunk.table->blocks(),
                          .need_logits = true,
                          .all_logits = all_logits,
                          .attention = attention};
  return ForwardBatch(std::span<const BatchSequence>(&seq, 1), kv, logits);
}


absl::Status CpuModel::ForwardBatch(std::span<const BatchSequence> seqs, HostKvStorage& kv,
                                    std::vector<float>& logits) {
  const KvLayout& layout = kv.layout();
  if (layout.num_layers != cfg_.num_hidden_layers ||
      layout.num_kv_heads != cfg_.num_key_value_heads || layout.head_dim != cfg_.head_dim) {
    return absl::InvalidArgumentError("ForwardBatch: KV pages laid out for another model");
  }
  const int64_t hidden = cfg_.hidden_size, hd = cfg_.head_dim;
  const int64_t nh = cfg_.num_attention_heads, nkv = cfg_.num_key_value_heads;
  const int64_t q_dim = nh * hd, kv_dim = nkv * hd, inter = cfg_.intermediate_size;
  const int64_t vocab = cfg_.vocab_size, ps = layout.page_size;

  // Row offsets of each sequence in the token matrix; validate before touching the pages.
  std::vector<int64_t> row0(seqs.size() + 1, 0);
  int64_t num_logits = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const BatchSequence& seq = seqs[s];
    const int64_t n = static_cast<int64_t>(seq.tokens.size());
    if (n == 0) return absl::InvalidArgumentError(absl::StrFormat("sequence %d: no tokens", s));
    const int64_t capacity = static_cast<int64_t>(seq.block_ids.size()) * ps;
    if (capacity < seq.start_pos + n) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d: block table holds %d tokens, positions up to %d needed", s, capacity,
          seq.start_pos + n));
    }
    for (size_t b = 0; b < seq.block_ids.size(); ++b) {
      const int32_t page = seq.block_ids[b];
      const bool written = static_cast<int64_t>(b + 1) * ps > seq.start_pos;
      if (page == -1 && !written &&
          (seq.selection != nullptr || seq.attention->ReleasableWindow(cfg_) > 0)) {
        continue;  // released
      }
      if (page < 0 || page >= kv.num_pages()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("sequence %d: page %d out of range [0, %d)", s, page, kv.num_pages()));
      }
    }
    if (seq.selection != nullptr) {
      for (const KvSpan& span : seq.selection->spans) {
        if (span.page_id < 0 || span.page_id >= kv.num_pages() || span.first_slot < 0 ||
            span.count < 0 || span.first_slot + span.count > ps) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "sequence %d: selection span (page %d, slots %d+%d) outside the pool", s,
              span.page_id, span.first_slot, span.count));
        }
      }
      if (seq.key_stats_rows < 0 || seq.key_stats_rows > n ||
          (seq.key_stats_rows > 0 && seq.key_stats == nullptr)) {
        return absl::InvalidArgumentError(
            absl::StrFormat("sequence %d: key_stats_rows %d of %d rows", s, seq.key_stats_rows, n));
      }
    }
    for (size_t i = 0; i < seq.tokens.size(); ++i) {
      const int32_t t = seq.tokens[i];
      const int64_t pos = seq.start_pos + static_cast<int64_t>(i);
      if (EmbeddingRowFor(seq.embeddings, t, pos) != nullptr) continue;
      if (t < 0 || t >= vocab) {
        return absl::InvalidArgumentError(
            absl::StrFormat("sequence %d: token id %d out of range [0, %d)", s, t, vocab));
      }
    }
    row0[s + 1] = row0[s] + n;
    num_logits += !seq.need_logits ? 0 : seq.all_logits ? n : 1;
  }
  const int64_t n = row0.back();
  logits.resize(num_logits * vocab);
  if (n == 0) return absl::OkStatus();

  std::vector<float> x(n * hidden), xn(n * hidden), q(n * q_dim), k(n * kv_dim), v(n * kv_dim);
  std::vector<float> attn(n * q_dim), proj(n * hidden), gate(n * inter), up(n * inter);
  std::vector<int64_t> pos(n);
  // Mode hip prunes with its queries before RoPE.
  const bool any_hip = std::any_of(seqs.begin(), seqs.end(),
                                   [](const BatchSequence& s) { return s.attention->hip(); });
  std::vector<float> q_raw(any_hip ? n * q_dim : 0);
  for (const BatchSequence& seq : seqs) {
    if (seq.hip_masks == nullptr) continue;
    if (seq.tokens.size() != 1) seq.hip_masks->layers.clear();  // masks are decode's
    seq.hip_masks->layers.resize(cfg_.num_hidden_layers);
  }
  for (size_t s = 0; s < seqs.size(); ++s) {
    for (int64_t i = 0; i < static_cast<int64_t>(seqs[s].tokens.size()); ++i) {
      const int64_t r = row0[s] + i;
      pos[r] = seqs[s].start_pos + i;
      const int32_t t = seqs[s].tokens[i];
      const float* row = t == kEmbeddingToken ? EmbeddingRowFor(seqs[s].embeddings, t, pos[r])
                                              : &w_.embed_tokens.data[t * hidden];
      std::memcpy(&x[r * hidden], row, hidden * sizeof(float));
    }
  }
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  auto bias = [](const HostTensor& t) { return t.data.empty() ? nullptr : t.data.data(); };
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    const LayerWeights& lw = w_.layers[l];
    cpu::RmsNorm(x.data(), lw.input_layernorm.data.data(), xn.data(), n, hidden, eps);
    cpu::MatMulTransposed(xn.data(), lw.q_proj.data.data(), bias(lw.q_bias), q.data(), n, q_dim,
                          hidden);
    cpu::MatMulTransposed(xn.data(), lw.k_proj.data.data(), bias(lw.k_bias), k.data(), n, kv_dim,
                          hidden);
    cpu::MatMulTransposed(xn.data(), lw.v_proj.data.data(), bias(lw.v_bias), v.data(), n, kv_dim,
                          hidden);
    if (any_hip) std::copy(q.begin(), q.end(), q_raw.begin());
    for (size_t s = 0; s < seqs.size(); ++s) {
      const BatchSequence& seq = seqs[s];
      for (int64_t r = row0[s]; r < row0[s + 1]; ++r) {
        const int32_t page = seq.block_ids[pos[r] / ps];
        const int64_t slot = pos[r] % ps;
        std::memcpy(kv.At(page, l, KvLayout::kKey, slot, 0), &k[r * kv_dim],
                    kv_dim * sizeof(float));
        std::memcpy(kv.At(page, l, KvLayout::kValue, slot, 0), &v[r * kv_dim],
                    kv_dim * sizeof(float));
        const int64_t q_pos = seq.attention->QueryPosition(pos[r]);
        for (int64_t h = 0; h < nh; ++h) rope_.Rotate(&q[(r * nh + h) * hd], q_pos);
      }
    }
    for (size_t s = 0; s < seqs.size(); ++s) {
      const BatchSequence& seq = seqs[s];
      const int64_t rows = row0[s + 1] - row0[s];
      cpu::PagedKvView view{.pages = kv.Page(0),
                            .page_elements = layout.PageElements(),
                            .k_offset = layout.Offset(l, KvLayout::kKey, 0, 0),
                            .v_offset = layout.Offset(l, KvLayout::kValue, 0, 0),
                            .token_stride = layout.TokenStride(),
                            .page_size = ps,
                            .block_table = seq.block_ids.data(),
                            .num_blocks = static_cast<int64_t>(seq.block_ids.size())};
      cpu::AttentionParams ap{
          .num_q_heads = nh,
          .num_kv_heads = nkv,
          .head_dim = hd,
          .scale = 1.0f / std::sqrt(static_cast<float>(hd)),
          .window = seq.attention->LayerWindow(cfg_.layer_window[l])};
      if (seq.selection != nullptr) {
        cpu::SelectionAttention(ap, view, rope_, *seq.selection, &q[row0[s] * q_dim],
                                &pos[row0[s]], rows, &attn[row0[s] * q_dim],
                                seq.key_stats_rows > 0 ? seq.key_stats : nullptr,
                                rows - seq.key_stats_rows);
      } else if (const HipAttention* hip = seq.attention->hip(); hip != nullptr) {
        HipRowsAttention(ap, view, rope_, seq.block_ids, *hip, l, cfg_.max_position_embeddings,
                         seq.hip_masks,
                         &q_raw[row0[s] * q_dim],
                         &q[row0[s] * q_dim], &pos[row0[s]], rows, &attn[row0[s] * q_dim]);
      } else if (seq.attention->PerRowSelection()) {
        SelectionRowsAttention(ap, view, rope_, seq.block_ids, *seq.attention,
                               cfg_.layer_window[l], &q[row0[s] * q_dim], &pos[row0[s]], rows,
                               &attn[row0[s] * q_dim]);
      } else {
        cpu::PagedAttention(ap, view, rope_, &q[row0[s] * q_dim], &pos[row0[s]], rows,
                            seq.start_pos + rows, &attn[row0[s] * q_dim]);
      }
    }
    cpu::MatMulTransposed(attn.data(), lw.o_proj.data.data(), nullptr, proj.data(), n, hidden,
                          q_dim);
    cpu::AddInPlace(x.data(), proj.data(), n * hidden);

    cpu::RmsNorm(x.data(), lw.post_attention_layernorm.data.data(), xn.data(), n, hidden, eps);
    cpu::MatMulTransposed(xn.data(), lw.gate_proj.data.data(), nullptr, gate.data(), n, inter,
                          hidden);
    cpu::MatMulTransposed(xn.data(), lw.up_proj.data.data(), nullptr, up.data(), n, inter, hidden);
    cpu::SiluMul(gate.data(), up.data(), gate.data(), n * inter);
    cpu::MatMulTransposed(gate.data(), lw.down_proj.data.data(), nullptr, proj.data(), n, hidden,
                          inter);
    cpu::AddInPlace(x.data(), proj.data(), n * hidden);
  }
  if (num_logits == 0) return absl::OkStatus();
  // Final norm and LM head only for the rows that need logits.
  std::vector<float> last(num_logits * hidden);
  int64_t row = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    if (!seqs[s].need_logits) continue;
    const int64_t first = seqs[s].all_logits ? row0[s] : row0[s + 1] - 1;
    const int64_t rows = row0[s + 1] - first;
    cpu::RmsNorm(&x[first * hidden], w_.norm.data.data(), &last[row * hidden], rows, hidden, eps);
    row += rows;
  }
  const HostTensor& head = w_.lm_head.data.empty() ? w_.embed_tokens : w_.lm_head;
  cpu::MatMulTransposed(last.data(), head.data.data(), nullptr, logits.data(), num_logits, vocab,
                        hidden);
  return absl::OkStatus();
}

}  // namespace longview
