#include "engine/cuda/internal/kernels_facade.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "kernels/cuda/decode_attention/decode_attention.h"
#include "kernels/cuda/embedding/embedding.h"
#include "kernels/cuda/key_stats/key_stats.h"
#include "kernels/cuda/kv_append/paged_kv_append.h"
#include "kernels/cuda/prefill_attention/prefill_attention.h"
#include "kernels/cuda/rope/rope.h"
#include "kernels/cuda/sampling/sampling.h"
#include "kernels/cuda/status.h"

namespace longview::cuda_internal {

using cuda::CudaStatus;

struct KernelsFacade::State {
  Config c;
  // Decode plans by (window, batch, context bucket); one workspace sized for the largest.
  std::map<std::tuple<int64_t, int64_t, int64_t>, cuda::DecodeAttentionPlan> decode_plans;
  void* decode_ws = nullptr;
  size_t decode_ws_bytes = 0;
  void* prefill_ws = nullptr;
  size_t prefill_ws_bytes = 0;
  void* select_ws = nullptr;
  size_t select_ws_bytes = 0;
  cuda::SamplingPlan sampling_plan;
  void* sampling_ws = nullptr;

  cuda::DecodeAttentionShape DecodeShape(int64_t batch, int64_t context, int64_t window) const {
    return cuda::DecodeAttentionShape{.dtype = c.dtype,
                                      .head_dim = c.head_dim,
                                      .num_q_heads = c.num_q_heads,
                                      .num_kv_heads = c.num_kv_heads,
                                      .batch_size = static_cast<int>(batch),
                                      .page_size = c.page_size,
                                      .max_kv_len = static_cast<int>(context),
                                      .max_position = c.max_position,
                                      .window = static_cast<int>(window),
                                      .rope_hi_rows = c.rope_hi_rows};
  }
  // The fields every attention kernel's arguments share (q, out, pages, RoPE tables, scale).
  template <typename Args>
  Args AttentionArgs(const void* q, int64_t q_row_stride, void* out, const PagesView& p) const {
    Args a{};
    a.q = q;
    a.q_row_stride = q_row_stride;
    a.out = out;
    a.pages = p.pages;
    a.page_stride = p.page_stride;
    a.k_offset = p.k_offset;
    a.v_offset = p.v_offset;
    a.rope_lo = c.rope_lo;
    a.rope_hi = c.rope_hi;
    a.scale = 1.f / std::sqrt(static_cast<float>(c.head_dim));
    return a;
  }

  absl::StatusOr<const cuda::DecodeAttentionPlan*> DecodePlan(int64_t window, int64_t batch,
                                                              int64_t context) {
    const auto key = std::make_tuple(window, batch, context);
    if (auto it = decode_plans.find(key); it != decode_plans.end()) return &it->second;
    const cuda::DecodeAttentionShape s = DecodeShape(batch, context, window);
    cuda::DecodeAttentionPlan plan;
    RETURN_IF_ERROR(CudaStatus(cuda::PlanDecodeAttention(s, &plan), "decode attention plan"));
    if (plan.workspace_bytes > decode_ws_bytes) {
      return absl::InternalError(
          absl::StrFormat("decode workspace %d bytes exceeds the %d reserved", plan.workspace_bytes,
                          decode_ws_bytes));
    }
    return &decode_plans.emplace(key, plan).first->second;
  }
};

KernelsFacade::KernelsFacade(std::unique_ptr<State> state) : s_(std::move(state)) {}

KernelsFacade::~KernelsFacade() {
  if (s_->decode_ws != nullptr) (void)cudaFree(s_->decode_ws);
  if (s_->prefill_ws != nullptr) (void)cudaFree(s_->prefill_ws);
  if (s_->select_ws != nullptr) (void)cudaFree(s_->select_ws);
  if (s_->sampling_ws != nullptr) (void)cudaFree(s_->sampling_ws);
}

absl::StatusOr<std::unique_ptr<KernelsFacade>> KernelsFacade::Create(const Config& c) {
  auto s = std::make_unique<State>();
  s->c = c;
  // Reserve the decode workspace for every (batch, context) bucket a step can use, so plans
  // made later (and graphs captured with them) never need a larger one.
  size_t need = 0;
  for (int64_t b = 1; b <= NextPow2(c.max_rows); b <<= 1) {
    for (int64_t t = 256; t <= NextPow2(c.max_model_len); t <<= 1) {
      for (int64_t w : c.windows) {
        const cuda::DecodeAttentionShape shape = s->DecodeShape(b, t, w);
        cuda::DecodeAttentionPlan plan;
        RETURN_IF_ERROR(
            CudaStatus(cuda::PlanDecodeAttention(shape, &plan), "decode attention plan"));
        need = std::max(need, plan.workspace_bytes);
      }
    }
  }
  if (need > 0) {
    RETURN_IF_ERROR(CudaStatus(cudaMalloc(&s->decode_ws, need), "decode workspace"));
  }
  s->decode_ws_bytes = need;
  RETURN_IF_ERROR(CudaStatus(cuda::PlanSampling({.max_rows = static_cast<int>(c.max_rows),
                                                 .vocab_size = static_cast<int>(c.vocab)},
                                                &s->sampling_plan),
                             "sampling plan"));
  if (s->sampling_plan.workspace_bytes > 0) {
    RETURN_IF_ERROR(
        CudaStatus(cudaMalloc(&s->sampling_ws, s->sampling_plan.workspace_bytes), "sampling"));
  }
  return std::unique_ptr<KernelsFacade>(new KernelsFacade(std::move(s)));
}

absl::Status KernelsFacade::Gather(const int32_t* ids, int64_t n, const void* table,
                                   int64_t num_table_rows, int64_t width, void* out,
                                   cudaStream_t stream) {
  return CudaStatus(cuda::EmbeddingLookup({.dtype = s_->c.dtype,
                                           .num_tokens = n,
                                           .vocab_size = num_table_rows,
                                           .hidden = width,
                                           .ids = ids,
                                           .table = table,
                                           .out = out},
                                          stream),
                    "row gather");
}

absl::Status KernelsFacade::RotateQ(void* q, int64_t n, int64_t row_stride,
                                    const int32_t* positions, cudaStream_t stream) {
  return CudaStatus(cuda::RotateRows({.dtype = s_->c.dtype,
                                      .num_rows = n,
                                      .num_heads = s_->c.num_q_heads,
                                      .head_dim = s_->c.head_dim,
                                      .row_stride = row_stride,
                                      .x = q,
                                      .positions = positions,
                                      .rope_lo = s_->c.rope_lo,
                                      .rope_hi = s_->c.rope_hi,
                                      .rope_hi_rows = s_->c.rope_hi_rows},
                                     stream),
                    "q rotation");
}

absl::Status KernelsFacade::KvAppend(const void* k, const void* v, int64_t row_stride,
                                     const int64_t* slots, int64_t n, const PagesView& p,
                                     cudaStream_t stream, void* q, int64_t num_q_rows,
                                     const int32_t* q_positions) {
  cuda::KvAppendArgs a{.dtype = s_->c.dtype,
                       .num_tokens = n,
                       .num_kv_heads = s_->c.num_kv_heads,
                       .head_dim = s_->c.head_dim,
                       .page_size = s_->c.page_size,
                       .k = k,
                       .v = v,
                       .slot_mapping = slots,
                       .pages = p.pages,
                       .page_stride = p.page_stride,
                       .k_offset = p.k_offset,
                       .v_offset = p.v_offset,
                       .k_row_stride = row_stride,
                       .v_row_stride = row_stride};
  if (q != nullptr && num_q_rows > 0) {
    a.q = q;
    a.num_q_heads = s_->c.num_q_heads;
    a.q_row_stride = row_stride;
    a.num_q_rows = num_q_rows;
    a.q_positions = q_positions;
    a.rope_lo = s_->c.rope_lo;
    a.rope_hi = s_->c.rope_hi;
    a.rope_hi_rows = s_->c.rope_hi_rows;
  }
  return CudaStatus(cuda::PagedKvAppend(a, stream), "kv append");
}

absl::Status KernelsFacade::Decode(int64_t window, int64_t batch, int64_t context_bucket,
                                   const void* q, int64_t q_row_stride, void* out,
                                   const PagesView& p, const int32_t* block_tables,
                                   int64_t table_stride, const int32_t* kv_lens,
                                   cudaStream_t stream) {
  ASSIGN_OR_RETURN(const cuda::DecodeAttentionPlan* plan,
                   s_->DecodePlan(window, batch, context_bucket));
  auto a = s_->AttentionArgs<cuda::DecodeAttentionArgs>(q, q_row_stride, out, p);
  a.block_tables = block_tables;
  a.block_table_stride = static_cast<int>(table_stride);
  a.kv_lens = kv_lens;
  return CudaStatus(cuda::RunDecodeAttention(*plan, a, s_->decode_ws, s_->decode_ws_bytes, stream),
                    "decode attention");
}

// Grows a workspace that no captured graph uses (the stream is synchronised first).
static absl::Status Grow(void** ws, size_t* bytes, size_t need, cudaStream_t stream,
                         const char* what) {
  if (need <= *bytes) return absl::OkStatus();
  RETURN_IF_ERROR(CudaStatus(cudaStreamSynchronize(stream), "sync"));
  if (*ws != nullptr) (void)cudaFree(*ws);
  *ws = nullptr;
  *bytes = 0;
  RETURN_IF_ERROR(CudaStatus(cudaMalloc(ws, need), what));
  *bytes = need;
  return absl::OkStatus();
}

absl::Status KernelsFacade::DecodeSelection(int64_t batch, int64_t max_spans, const void* q,
                                            int64_t q_row_stride, void* out, const PagesView& p,
                                            const KvSpan* spans,
                                            const int32_t* span_offsets, cudaStream_t stream,
                                            const KeyStatsRows* stats) {
  cuda::DecodeAttentionShape shape = s_->DecodeShape(batch, /*context=*/0, /*window=*/0);
  shape.max_spans = static_cast<int>(std::max<int64_t>(max_spans, 1));
  cuda::DecodeAttentionPlan plan;
  RETURN_IF_ERROR(CudaStatus(cuda::PlanDecodeAttention(shape, &plan), "selection decode plan"));
  RETURN_IF_ERROR(Grow(&s_->select_ws, &s_->select_ws_bytes, plan.workspace_bytes, stream,
                       "selection decode workspace"));
  auto a = s_->AttentionArgs<cuda::DecodeAttentionArgs>(q, q_row_stride, out, p);
  a.spans = spans;
  a.span_offsets = span_offsets;
  const bool fused = stats != nullptr && stats->scores != nullptr;
  if (stats != nullptr) a.lse = stats->lse;
  if (fused) {
    a.scores = stats->scores;
    a.span_keys = stats->span_keys;
    a.scores_base = stats->scores_base;
    a.scores_stride = stats->scores_stride;
  }
  RETURN_IF_ERROR(
      CudaStatus(cuda::RunDecodeAttention(plan, a, s_->select_ws, s_->select_ws_bytes, stream),
                 "selection decode attention"));
  if (stats == nullptr) return absl::OkStatus();
  const cuda::KeyStatsShape ks{.dtype = s_->c.dtype,
                               .head_dim = s_->c.head_dim,
                               .num_q_heads = s_->c.num_q_heads,
                               .num_kv_heads = s_->c.num_kv_heads,
                               .num_rows = static_cast<int>(batch),
                               .page_size = s_->c.page_size,
                               .max_spans = static_cast<int>(max_spans),
                               .rope_hi_rows = s_->c.rope_hi_rows,
                               .max_keys = static_cast<int>(stats->max_keys)};
  if (fused) {
    return CudaStatus(cuda::RunKeyStatsFromScores(ks,
                                                  {.scores = stats->scores,
                                                   .scores_base = stats->scores_base,
                                                   .scores_stride = stats->scores_stride,
                                                   .lse = stats->lse,
                                                   .stats_base = stats->stats_base,
                                                   .stats_stride = stats->stats_stride,
                                                   .stats = stats->stats},
                                                  stream),
                      "key statistics");
  }
  return CudaStatus(cuda::RunKeyStats(ks,
                                      {.q = q,
                                       .q_row_stride = q_row_stride,
                                       .lse = stats->lse,
                                       .pages = p.pages,
                                       .page_stride = p.page_stride,
                                       .k_offset = p.k_offset,
                                       .spans = spans,
                                       .span_offsets = span_offsets,
                                       .span_keys = stats->span_keys,
                                       .stats_base = stats->stats_base,
                                       .stats_stride = stats->stats_stride,
                                       .stats = stats->stats,
                                       .rope_lo = s_->c.rope_lo,
                                       .rope_hi = s_->c.rope_hi,
                                       .scale = a.scale},
                                      stream),
                    "key statistics");
}

absl::Status KernelsFacade::Prefill(int64_t num_seqs, int64_t num_rows, int64_t max_total_kv,
                                    const void* q, int64_t q_row_stride, void* out,
                                    const PagesView& p, const int32_t* block_tables,
                                    int64_t table_stride, const int32_t* q_start,
                                    const int32_t* kv_lens, const int32_t* windows,
                                    const int32_t* sinks, cudaStream_t stream) {
  cuda::PrefillAttentionShape shape{.dtype = s_->c.dtype,
                                    .head_dim = s_->c.head_dim,
                                    .num_q_heads = s_->c.num_q_heads,
                                    .num_kv_heads = s_->c.num_kv_heads,
                                    .batch_size = static_cast<int>(num_seqs),
                                    .page_size = s_->c.page_size,
                                    .max_total_q = static_cast<int>(num_rows),
                                    .max_total_kv = max_total_kv,
                                    .rope_hi_rows = s_->c.rope_hi_rows};
  cuda::PrefillAttentionPlan plan;
  RETURN_IF_ERROR(CudaStatus(cuda::PlanPrefillAttention(shape, &plan), "prefill attention plan"));
  // Prefill steps are never captured: growing here is safe.
  RETURN_IF_ERROR(Grow(&s_->prefill_ws, &s_->prefill_ws_bytes, plan.workspace_bytes, stream,
                       "prefill workspace"));
  auto a = s_->AttentionArgs<cuda::PrefillAttentionArgs>(q, q_row_stride, out, p);
  a.block_tables = block_tables;
  a.block_table_stride = static_cast<int>(table_stride);
  a.q_start = q_start;
  a.kv_lens = kv_lens;
  a.window = windows;
  a.sinks = sinks;
  return CudaStatus(
      cuda::RunPrefillAttention(plan, a, s_->prefill_ws, s_->prefill_ws_bytes, stream),
      "prefill attention");
}

absl::Status KernelsFacade::PrefillSelection(int64_t num_seqs, int64_t num_rows,
                                             int64_t total_kv, int64_t max_spans, const void* q,
                                             int64_t q_row_stride, void* out, const PagesView& p,
                                             const KvSpan* spans, const int32_t* span_offsets,
                                             const int32_t* q_start, const int32_t* q_positions,
                                             cudaStream_t stream) {
  cuda::PrefillAttentionShape shape{.dtype = s_->c.dtype,
                                    .head_dim = s_->c.head_dim,
                                    .num_q_heads = s_->c.num_q_heads,
                                    .num_kv_heads = s_->c.num_kv_heads,
                                    .batch_size = static_cast<int>(num_seqs),
                                    .page_size = s_->c.page_size,
                                    .max_total_q = static_cast<int>(num_rows),
                                    .max_total_kv = std::max<int64_t>(total_kv, 1),
                                    .rope_hi_rows = s_->c.rope_hi_rows,
                                    .max_spans = static_cast<int>(std::max<int64_t>(max_spans, 1))};
  cuda::PrefillAttentionPlan plan;
  RETURN_IF_ERROR(
      CudaStatus(cuda::PlanPrefillAttention(shape, &plan), "selection prefill attention plan"));
  RETURN_IF_ERROR(Grow(&s_->prefill_ws, &s_->prefill_ws_bytes, plan.workspace_bytes, stream,
                       "prefill workspace"));
  auto a = s_->AttentionArgs<cuda::PrefillAttentionArgs>(q, q_row_stride, out, p);
  a.q_start = q_start;
  a.spans = spans;
  a.span_offsets = span_offsets;
  a.q_positions = q_positions;
  return CudaStatus(
      cuda::RunPrefillAttention(plan, a, s_->prefill_ws, s_->prefill_ws_bytes, stream),
      "selection prefill attention");
}

absl::Status KernelsFacade::Sample(const float* logits, int64_t rows, const SampleParams& p,
                                   int32_t* tokens, float* logprobs, cudaStream_t stream) {
  cuda::SamplingArgs a{};
  a.num_rows = static_cast<int>(rows);
  a.logits = logits;
  a.temperature = p.temperature;
  a.top_k = p.top_k;
  a.top_p = p.top_p;
  a.seed = p.seed;
  a.counter = p.counter;
  a.tokens = tokens;
  a.logprobs = logprobs;
  return CudaStatus(cuda::RunSampling(s_->sampling_plan, a, s_->sampling_ws,
                                      s_->sampling_plan.workspace_bytes, stream),
                    "sampling");
}

}  // namespace longview::cuda_internal
