// The per-layer ops of the CUDA forward (layer_ops.h).
#include "engine/cuda/internal/layer_ops.h"

#include <vector>

#include "engine/cuda/cublaslt_gemm.h"
#include "engine/cuda/internal/step_meta.h"
#include "kernels/cuda/activation/silu_mul.h"
#include "kernels/cuda/norm/rmsnorm.h"
#include "kernels/cuda/status.h"
#include "kernels/kv_span.h"

namespace longview::cuda_internal {
namespace {

const int32_t* I32(const CudaModelRunner::Impl& m, size_t offset) {
  return reinterpret_cast<const int32_t*>(m.meta_dev + offset);
}

// out = RMSNorm(residual += x) with `weight`; x null: out = RMSNorm(residual).
absl::Status AddNorm(CudaModelRunner::Impl& m, int64_t rows, const void* x, const void* weight) {
  return cuda::CudaStatus(cuda::FusedAddRmsNorm({.dtype = m.dt,
                                                 .num_rows = rows,
                                                 .hidden = m.hidden,
                                                 .eps = static_cast<float>(m.cfg.rms_norm_eps),
                                                 .x = x,
                                                 .residual = m.x,
                                                 .weight = weight,
                                                 .out = m.xn},
                                                m.stream),
                          "rmsnorm");
}

}  // namespace

absl::Status PagedAttentionOp::Run(CudaModelRunner::Impl& m, const StepLayout& L, int64_t layer,
                                   const PagesView& view) const {
  KernelsFacade& k = *m.kernels;
  const cudaStream_t st = m.stream;
  const int64_t rows = L.total_rows;
  char* qkv = static_cast<char*>(m.qkv);
  // K and V to the pages; the decode rows' q rotated in the same kernel.
  RETURN_IF_ERROR(k.KvAppend(qkv + m.q_dim * 2, qkv + (m.q_dim + m.kv_dim) * 2, m.qkv_dim,
                             reinterpret_cast<const int64_t*>(m.meta_dev + L.slots), rows, view,
                             st, m.qkv, L.batch_padded + L.ns, I32(m, L.dec_pos)));
  if (L.batch_padded > 0) {
    RETURN_IF_ERROR(k.Decode(m.layer_window[layer], L.batch_padded, L.context_bucket, m.qkv,
                             m.qkv_dim, m.attn, view, I32(m, L.dec_tables), L.decode_stride,
                             I32(m, L.dec_lens), st));
  }
  // KV policies: per-key attention, summed over the layers into m.key_stats; fused (the
  // kernel writes the scores) when the step's scores fit the runner's buffer.
  const KernelsFacade::KeyStatsRows stats{
      .lse = m.sel_lse,
      .span_keys = I32(m, L.sel_span_keys),
      .stats_base = reinterpret_cast<const int64_t*>(m.meta_dev + L.sel_stats_base),
      .stats_stride = I32(m, L.sel_stats_stride),
      .stats = m.key_stats,
      .scores = L.scores_floats > 0 ? m.sel_scores : nullptr,
      .scores_base = reinterpret_cast<const int64_t*>(m.meta_dev + L.sel_scores_base),
      .scores_stride = I32(m, L.sel_scores_stride),
      .max_keys = L.max_row_keys};
  const auto* spans = reinterpret_cast<const KvSpan*>(m.meta_dev + L.sel_spans);
  if (L.ns > 0) {
    RETURN_IF_ERROR(k.DecodeSelection(
        L.ns, L.max_spans, m.Row(m.qkv, L.batch_padded, m.qkv_dim), m.qkv_dim,
        m.Row(m.attn, L.batch_padded, m.q_dim), view,
        spans, I32(m, L.sel_offsets), st, L.stats_floats > 0 ? &stats : nullptr));
  }
  if (L.np > 0) {
    RETURN_IF_ERROR(k.Prefill(
        L.np, L.sp_row0 - L.prefill_row0, L.prefill_total_kv,
        m.Row(m.qkv, L.prefill_row0, m.qkv_dim), m.qkv_dim, m.Row(m.attn, L.prefill_row0, m.q_dim), view, I32(m, L.pre_tables),
        L.prefill_stride, I32(m, L.pre_qstart), I32(m, L.pre_lens),
        I32(m, L.pre_windows) + m.layer_window_index[layer] * L.np, I32(m, L.pre_sinks), st));
  }
  if (L.nsp > 0) {
    RETURN_IF_ERROR(k.PrefillSelection(
        L.nsp, rows - L.sp_row0, L.sp_total_kv, L.sp_max_spans, m.Row(m.qkv, L.sp_row0, m.qkv_dim),
        m.qkv_dim, m.Row(m.attn, L.sp_row0, m.q_dim), view, spans, I32(m, L.sp_offsets),
        I32(m, L.sp_qstart), I32(m, L.sp_qpos), st));
  }
  if (L.nx > 0) {
    // Stats rows: their q (the KV append rotated only the decode rows') gathered into scratch,
    // rotated at their positions, attended as selection rows for the statistics alone; the
    // per-row arrays continue after the ns selection rows.
    RETURN_IF_ERROR(k.Gather(I32(m, L.stats_rows_src), L.nx, m.qkv, rows, m.qkv_dim, m.stats_q,
                             st));
    RETURN_IF_ERROR(k.RotateQ(m.stats_q, L.nx, m.qkv_dim, I32(m, L.stats_rows_pos), st));
    KernelsFacade::KeyStatsRows x = stats;
    x.lse = m.sel_lse + L.ns * m.nh;
    x.stats_base += L.ns;
    x.stats_stride += L.ns;
    if (x.scores != nullptr) {
      x.scores_base += L.ns;
      x.scores_stride += L.ns;
    }
    RETURN_IF_ERROR(k.DecodeSelection(L.nx, L.max_spans, m.stats_q, m.qkv_dim, m.stats_out, view,
                                      spans, I32(m, L.sel_offsets) + L.ns, st, &x));
  }
  return absl::OkStatus();
}

absl::Status EmbedTokens(CudaModelRunner::Impl& m, const StepLayout& L) {
  RETURN_IF_ERROR(m.kernels->Gather(I32(m, L.ids), L.total_rows, m.w.embed, m.vocab, m.hidden,
                                    m.x, m.stream));
  // Input embeddings over their rows, one upload per run of consecutive rows (never captured:
  // such steps run eagerly, and a pageable upload's source may go once the call returns).
  const auto& rows = L.embed_rows;
  std::vector<uint16_t> bits;
  for (size_t i = 0, j = 0; i < rows.size(); i = j) {
    for (j = i + 1; j < rows.size() && rows[j].first == rows[j - 1].first + 1; ++j) {
    }
    bits.resize((j - i) * m.hidden);
    for (size_t r = i; r < j; ++r) {
      for (int64_t c = 0; c < m.hidden; ++c) {
        bits[(r - i) * m.hidden + c] = DTypeBits(rows[r].second[c], m.dt);
      }
    }
    RETURN_IF_ERROR(cuda::CudaStatus(
        cudaMemcpyAsync(static_cast<uint16_t*>(m.x) + rows[i].first * m.hidden, bits.data(),
                        bits.size() * sizeof(uint16_t), cudaMemcpyHostToDevice, m.stream),
        "input embeddings upload"));
  }
  return absl::OkStatus();
}

absl::Status AttentionBlock(CudaModelRunner::Impl& m, const StepLayout& L, int64_t layer) {
  const DeviceLayer& lw = m.w.layers[layer];
  const int64_t rows = L.total_rows;
  // The previous layer's MLP output joins the residual here (none before the first layer).
  RETURN_IF_ERROR(AddNorm(m, rows, layer == 0 ? nullptr : m.proj, lw.input_norm));
  RETURN_IF_ERROR(m.gemm->Run({.dtype = m.dt,
                               .m = rows,
                               .n = m.qkv_dim,
                               .k = m.hidden,
                               .x = m.xn,
                               .w = lw.qkv,
                               .bias = lw.qkv_bias,
                               .y = m.qkv},
                              m.stream));
  const PagesView view{.pages = m.kv->pages(),
                       .page_stride = m.layout.PageElements(),
                       .k_offset = m.layout.Offset(layer, KvLayout::kKey, 0, 0),
                       .v_offset = m.layout.Offset(layer, KvLayout::kValue, 0, 0)};
  RETURN_IF_ERROR(m.attention_ops[layer]->Run(m, L, layer, view));
  return m.gemm->Run({.dtype = m.dt,
                      .m = rows,
                      .n = m.hidden,
                      .k = m.q_dim,
                      .x = m.attn,
                      .w = lw.o,
                      .y = m.proj},
                     m.stream);
}

absl::Status MlpBlock(CudaModelRunner::Impl& m, const StepLayout& L, int64_t layer) {
  const DeviceLayer& lw = m.w.layers[layer];
  const int64_t rows = L.total_rows;
  RETURN_IF_ERROR(AddNorm(m, rows, m.proj, lw.post_norm));
  RETURN_IF_ERROR(m.gemm->Run({.dtype = m.dt,
                               .m = rows,
                               .n = 2 * m.inter,
                               .k = m.hidden,
                               .x = m.xn,
                               .w = lw.gate_up,
                               .y = m.gu},
                              m.stream));
  char* gu = static_cast<char*>(m.gu);
  RETURN_IF_ERROR(cuda::CudaStatus(cuda::SiluMul({.dtype = m.dt,
                                                  .num_rows = rows,
                                                  .n = m.inter,
                                                  .gate = gu,
                                                  .up = gu + m.inter * 2,
                                                  .out = m.act,
                                                  .gate_stride = 2 * m.inter,
                                                  .up_stride = 2 * m.inter,
                                                  .out_stride = m.inter},
                                                 m.stream),
                                   "silu_mul"));
  return m.gemm->Run({.dtype = m.dt,
                      .m = rows,
                      .n = m.hidden,
                      .k = m.inter,
                      .x = m.act,
                      .w = lw.down,
                      .y = m.proj},
                     m.stream);
}

absl::Status LogitsHead(CudaModelRunner::Impl& m, const StepLayout& L) {
  RETURN_IF_ERROR(AddNorm(m, L.total_rows, m.proj, m.w.final_norm));
  const bool in_place = LogitsInPlace(L);
  const int64_t r = in_place ? L.batch_padded : static_cast<int64_t>(L.logit_src.size());
  if (r == 0) return absl::OkStatus();
  const void* src = m.xn;
  const bool wide = r > m.max_rows;  // scoring a prompt: the wide buffers (EnsureLogitsRows)
  float* logits = wide ? m.wide_logits : m.logits;
  if (!in_place) {
    void* last = wide ? m.wide_last : m.last;
    RETURN_IF_ERROR(
        m.kernels->Gather(I32(m, L.gather), r, m.xn, L.total_rows, m.hidden, last, m.stream));
    src = last;
  }
  RETURN_IF_ERROR(m.gemm->Run({.dtype = m.dt,
                               .m = r,
                               .n = m.vocab,
                               .k = m.hidden,
                               .x = src,
                               .w = m.w.lm_head,
                               .y = logits,
                               .y_float32 = true},
                              m.stream));
  if (L.sample) {
    const KernelsFacade::SampleParams p{
        .temperature = reinterpret_cast<const float*>(m.meta_dev + L.s_temp),
        .top_k = I32(m, L.s_topk),
        .top_p = reinterpret_cast<const float*>(m.meta_dev + L.s_topp),
        .seed = reinterpret_cast<const uint64_t*>(m.meta_dev + L.s_seed),
        .counter = reinterpret_cast<const uint64_t*>(m.meta_dev + L.s_counter)};
    RETURN_IF_ERROR(m.kernels->Sample(m.logits, r, p, m.sampled_tokens, m.sampled_logprobs,
                                      m.stream));
  }
  return absl::OkStatus();
}

}  // namespace longview::cuda_internal
