// PrepareStep (runner_impl.h): validation, row layout and per-step metadata of the CUDA runner.
#include <algorithm>

#include "absl/strings/str_format.h"
#include "engine/attention/attention_mode.h"
#include "engine/cuda/internal/runner_impl.h"
#include "engine/cuda/internal/step_meta.h"
#include "kernels/kv_selection.h"
#include "kernels/cuda/decode_attention/decode_attention.h"

namespace longview {
namespace {

enum class Group { kDenseDecode, kSelectionDecode, kPrefill, kSelectionPrefill };

// Whether a KV policy's selection reads exactly tokens [0, start_pos + n) at their own slots and
// positions (nothing evicted yet): then the prefill kernel computes the same attention.
bool DenseEquivalent(const ScheduledSequence& s, int64_t ps) {
  int64_t pos = 0;
  for (const KvSpan& sp : s.kv_selection->spans) {
    if (sp.first_position != pos || pos / ps >= static_cast<int64_t>(s.block_ids.size()) ||
        sp.page_id != s.block_ids[pos / ps] || sp.first_slot != pos % ps) {
      return false;
    }
    pos += sp.count;
  }
  return pos == s.start_pos + static_cast<int64_t>(s.token_ids.size());
}

Group GroupOf(const ScheduledSequence& s, int64_t ps) {
  // A KV policy's sequence: a prompt chunk is prefilled by the rule-mode prefill kernel before
  // any eviction, by its selection mode after (the kept keys at their own positions, then the
  // chunk); the rows whose statistics the policy wants are attended again as selection-decode
  // rows ("stats rows"). A decode token is a selection-decode row.
  if (s.kv_selection != nullptr) {
    if (s.token_ids.size() == 1) return Group::kSelectionDecode;
    return DenseEquivalent(s, ps) ? Group::kPrefill : Group::kSelectionPrefill;
  }
  if (s.token_ids.size() != 1) return Group::kPrefill;
  // The model's own windows read keys by position: the dense decode kernel (graph-captured).
  const KvFootprint f = s.attention->Footprint();
  if (f.window < 0 && f.sinks == 0 && !s.attention->PerRowSelection()) return Group::kDenseDecode;
  return Group::kSelectionDecode;
}

absl::Status Validate(const CudaModelRunner::Impl& m, size_t i, const ScheduledSequence& s) {
  const int64_t ps = m.opt.page_size;
  const int64_t n = static_cast<int64_t>(s.token_ids.size());
  if (n == 0) return absl::InvalidArgumentError(absl::StrFormat("sequence %d: no tokens", i));
  const int64_t capacity = static_cast<int64_t>(s.block_ids.size()) * ps;
  if (s.start_pos < 0 || capacity < s.start_pos + n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "sequence %d: block table holds %d tokens, positions up to %d needed", i, capacity,
        s.start_pos + n));
  }
  if (s.start_pos + n > s.attention->MaxSequenceLength(m.max_model_len)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "sequence %d: %d tokens exceed the runner's max_model_len %d", i, s.start_pos + n,
        m.max_model_len));
  }
  if (s.start_pos + n > kMaxRopePosition) {
    return absl::InvalidArgumentError(
        absl::StrFormat("sequence %d: position %d beyond the RoPE tables", i, s.start_pos + n));
  }
  for (size_t b = 0; b < s.block_ids.size(); ++b) {
    const int32_t page = s.block_ids[b];
    const bool written = static_cast<int64_t>(b + 1) * ps > s.start_pos;
    const bool releasable = s.attention->ReleasableWindow(m.cfg) > 0 || s.kv_selection != nullptr;
    if (page == -1 && releasable && !written) continue;  // released
    if (page < 0 || page >= m.num_pages) {
      return absl::InvalidArgumentError(
          absl::StrFormat("sequence %d: page %d out of range [0, %d)", i, page, m.num_pages));
    }
  }
  if (s.kv_selection != nullptr) {
    if (!s.kv_selection->head_begin.empty()) {
      return absl::UnimplementedError(absl::StrFormat(
          "sequence %d: per-KV-head policy selections are not supported on CUDA", i));
    }
    for (const KvSpan& sp : s.kv_selection->spans) {
      if (sp.count < 0 || sp.page_id < 0 || sp.page_id >= m.num_pages || sp.first_slot < 0 ||
          sp.first_slot + sp.count > ps || sp.first_position < 0 ||
          sp.first_position + sp.count > kMaxRopePosition) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "sequence %d: KV selection span (page %d, slot %d, count %d, position %d) is out of "
            "range",
            i, sp.page_id, sp.first_slot, sp.count, sp.first_position));
      }
    }
    if (s.key_stats_rows < 0 || s.key_stats_rows > n) {
      return absl::InvalidArgumentError(
          absl::StrFormat("sequence %d: key_stats_rows %d of %d rows", i, s.key_stats_rows, n));
    }
  }
  for (int64_t j = 0; j < n; ++j) {
    const int32_t t = s.token_ids[j];
    if (EmbeddingRowFor(s.embeddings.get(), t, s.start_pos + j) != nullptr) continue;
    if (t < 0 || t >= m.vocab) {
      return absl::InvalidArgumentError(
          absl::StrFormat("sequence %d: token id %d out of range [0, %d)", i, t, m.vocab));
    }
  }
  return absl::OkStatus();
}


template <typename T>
T* At(char* base, size_t off) {
  return reinterpret_cast<T*>(base + off);
}

}  // namespace

bool LogitsInPlace(const StepLayout& L) {
  if (L.np > 0 || L.ns > 0) return false;
  for (size_t i = 0; i < L.logit_src.size(); ++i) {
    if (L.logit_src[i] != static_cast<int64_t>(i)) return false;
  }
  return true;
}

absl::Status PrepareStep(CudaModelRunner::Impl& m, const StepPlan& plan, StepLayout& L) {
  const int64_t ps = m.opt.page_size;
  if (static_cast<int64_t>(plan.seqs.size()) > m.opt.max_num_seqs) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "step has %d sequences, the runner takes at most %d", plan.seqs.size(), m.opt.max_num_seqs));
  }
  int64_t num_tokens = 0, num_logits = 0, num_device_sampled = 0;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSequence& s = plan.seqs[i];
    RETURN_IF_ERROR(Validate(m, i, s));
    num_tokens += static_cast<int64_t>(s.token_ids.size());
    if (s.need_logits) {
      ++num_logits;
      num_device_sampled += s.device_sampling.has_value();
    }
  }
  if (num_tokens > m.opt.max_num_tokens) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "step has %d tokens, the runner takes at most %d", num_tokens, m.opt.max_num_tokens));
  }
  L.num_tokens = num_tokens;
  L.sample = num_logits > 0 && num_device_sampled == num_logits;

  // Row order: dense decode, selection decode, prefill (rule mode), prefill (selection mode).
  for (Group g : {Group::kDenseDecode, Group::kSelectionDecode, Group::kPrefill,
                  Group::kSelectionPrefill}) {
    const int64_t before = static_cast<int64_t>(L.order.size());
    for (size_t i = 0; i < plan.seqs.size(); ++i) {
      if (GroupOf(plan.seqs[i], ps) == g) L.order.push_back(i);
    }
    const int64_t count = static_cast<int64_t>(L.order.size()) - before;
    if (g == Group::kDenseDecode) L.nd = count;
    if (g == Group::kSelectionDecode) L.ns_seqs = count;
    if (g == Group::kPrefill) L.np = count;
    if (g == Group::kSelectionPrefill) L.nsp = count;
  }
  for (int64_t j = 0; j < L.ns_seqs; ++j) {
    L.ns += static_cast<int64_t>(plan.seqs[L.order[L.nd + j]].token_ids.size());
  }
  const int64_t max_rows = std::max<int64_t>(NextPow2(m.opt.max_num_seqs), m.opt.max_num_seqs);
  L.batch_padded = L.nd == 0 ? 0 : std::min(NextPow2(L.nd), max_rows);
  L.prefill_row0 = L.batch_padded + L.ns;
  int64_t max_dec_len = 0;
  for (int64_t k = 0; k < L.nd; ++k) {
    max_dec_len = std::max(max_dec_len, plan.seqs[L.order[k]].start_pos + 1);
  }
  L.context_bucket = L.nd == 0 ? 0 : std::max(kMinContextBucket, NextPow2(max_dec_len));
  L.decode_stride = (L.context_bucket + ps - 1) / ps;

  // Selection rows, built now (their span count sizes the metadata): per row its spans, the
  // query position and, for KV policies, where its per-key statistics go.
  struct SelRow {
    std::vector<KvSpan> spans;
    std::vector<int32_t> span_keys;  // index of each span's first key in the sequence's order
    int64_t pos = 0;
    int64_t stats_base = -1;
    int32_t stats_stride = 0;
    int64_t keys = 0;  // keys the row reads
  };
  std::vector<SelRow> sel_rows;
  sel_rows.reserve(L.ns);
  int64_t num_spans = 0;
  L.stats_offset.assign(plan.seqs.size(), -1);
  L.stats_keys.assign(plan.seqs.size(), 0);
  // A policy sequence's rows from its token `first` on (returns how many). Its selection lists
  // the keys by position at their own positions; row i (query position start_pos + i) reads the
  // prefix of keys at positions <= its own. The last key_stats_rows rows add statistics.
  auto AddPolicyRows = [&](size_t idx, int64_t first) -> int64_t {
    const ScheduledSequence& s = plan.seqs[idx];
    const std::vector<KvSpan>& all = s.kv_selection->spans;
    int64_t keys = 0;
    for (const KvSpan& sp : all) keys += sp.count;
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    if (s.key_stats_rows > 0) {
      L.stats_offset[idx] = L.stats_floats;
      L.stats_keys[idx] = keys;
      L.stats_floats += m.nkv * keys;
    }
    for (int64_t i = first; i < n; ++i) {
      SelRow r;
      r.pos = s.start_pos + i;
      int32_t key = 0;
      for (const KvSpan& sp : all) {
        if (sp.first_position > r.pos) break;
        KvSpan cut = sp;
        cut.count =
            static_cast<int32_t>(std::min<int64_t>(sp.count, r.pos - sp.first_position + 1));
        r.spans.push_back(cut);
        r.span_keys.push_back(key);
        key += sp.count;
        r.keys += cut.count;
      }
      if (i >= n - s.key_stats_rows) {
        r.stats_base = L.stats_offset[idx];
        r.stats_stride = static_cast<int32_t>(keys);
      }
      num_spans += static_cast<int64_t>(r.spans.size());
      L.max_spans = std::max<int64_t>(L.max_spans, r.spans.size());
      sel_rows.push_back(std::move(r));
    }
    return n - first;
  };
  for (int64_t j = 0; j < L.ns_seqs; ++j) {
    const size_t idx = L.order[L.nd + j];
    const ScheduledSequence& s = plan.seqs[idx];
    if (s.kv_selection == nullptr) {
      // One selection serves every layer: the group holds modes that set their own window
      // (Footprint().window >= 0), so the model's per-layer windows (0 here) do not apply.
      SelRow r;
      r.spans = s.attention->SelectKv(s.block_ids, ps, s.start_pos, 0, &r.pos).spans;
      num_spans += static_cast<int64_t>(r.spans.size());
      L.max_spans = std::max<int64_t>(L.max_spans, r.spans.size());
      sel_rows.push_back(std::move(r));
      continue;
    }
    AddPolicyRows(idx, 0);
  }
  // Stats rows of the policy sequences prefilled as usual: their last key_stats_rows tokens
  // again, as selection rows whose outputs are dropped (their q is gathered and rotated into
  // scratch rows by the layer op).
  L.nx = 0;
  for (size_t k = static_cast<size_t>(L.nd + L.ns_seqs); k < L.order.size(); ++k) {
    const ScheduledSequence& s = plan.seqs[L.order[k]];
    if (s.kv_selection == nullptr || s.key_stats_rows == 0) continue;
    L.nx += AddPolicyRows(L.order[k], static_cast<int64_t>(s.token_ids.size()) - s.key_stats_rows);
  }

  const int64_t sel_row_spans = num_spans;  // selection-prefill spans follow
  for (size_t k = static_cast<size_t>(L.nd + L.ns_seqs + L.np); k < L.order.size(); ++k) {
    num_spans += static_cast<int64_t>(plan.seqs[L.order[k]].kv_selection->spans.size());
  }

  // The fused statistics path stores every stats row's scores ([q_head][row keys]); a step
  // whose scores would exceed opt.max_score_floats (a long prefill chunk of an H2O sequence)
  // takes the standalone pass instead.
  std::vector<int64_t> scores_base(sel_rows.size(), -1);
  for (size_t j = 0; j < sel_rows.size(); ++j) {
    if (sel_rows[j].stats_base < 0) continue;
    scores_base[j] = L.scores_floats;
    L.scores_floats += m.nh * sel_rows[j].keys;
    L.max_row_keys = std::max(L.max_row_keys, sel_rows[j].keys);
  }
  if (L.scores_floats > m.opt.max_score_floats) L.scores_floats = 0;

  const size_t p0 = static_cast<size_t>(L.nd + L.ns_seqs);
  const size_t sp0 = p0 + static_cast<size_t>(L.np);  // first selection-prefill sequence
  L.prefill_stride = 1;
  int64_t prefill_rows = 0, sel_prefill_rows = 0;
  for (size_t k = p0; k < L.order.size(); ++k) {
    const ScheduledSequence& s = plan.seqs[L.order[k]];
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    if (k < sp0) {
      L.prefill_stride = std::max<int64_t>(L.prefill_stride, s.block_ids.size());
      prefill_rows += n;
    } else {
      sel_prefill_rows += n;
      L.sp_max_spans = std::max<int64_t>(L.sp_max_spans, s.kv_selection->spans.size());
      for (const KvSpan& sp : s.kv_selection->spans) L.sp_total_kv += sp.count;
    }
  }
  for (int64_t v = 0; v < static_cast<int64_t>(m.distinct_windows.size()); ++v) {
    int64_t total = 0;
    for (size_t k = p0; k < sp0; ++k) {
      const ScheduledSequence& s = plan.seqs[L.order[k]];
      const int64_t n = static_cast<int64_t>(s.token_ids.size()), kv_len = s.start_pos + n;
      const KvFootprint f = s.attention->Footprint();
      const int64_t window = s.attention->LayerWindow(m.distinct_windows[v]);
      total += window > 0 ? std::min(kv_len, f.sinks + window + n - 1) : kv_len;
    }
    L.prefill_total_kv = std::max(L.prefill_total_kv, total);
  }
  L.sp_row0 = L.prefill_row0 + prefill_rows;
  L.total_rows = L.sp_row0 + sel_prefill_rows;
  L.row0.resize(L.order.size());
  for (size_t k = 0, row = L.prefill_row0, sel = L.batch_padded; k < L.order.size(); ++k) {
    if (k < static_cast<size_t>(L.nd)) {
      L.row0[k] = static_cast<int64_t>(k);
    } else if (k < p0) {
      L.row0[k] = static_cast<int64_t>(sel);
      sel += plan.seqs[L.order[k]].token_ids.size();
    } else {
      L.row0[k] = static_cast<int64_t>(row);
      row += plan.seqs[L.order[k]].token_ids.size();
    }
  }
  L.out_row.assign(plan.seqs.size(), -1);
  L.out_count.assign(plan.seqs.size(), 0);
  for (size_t k = 0; k < L.order.size(); ++k) {
    const ScheduledSequence& s = plan.seqs[L.order[k]];
    if (!s.need_logits) continue;
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    L.out_row[L.order[k]] = static_cast<int32_t>(L.logit_src.size());
    L.out_count[L.order[k]] = s.all_logits ? static_cast<int32_t>(n) : 1;
    for (int64_t i = s.all_logits ? 0 : n - 1; i < n; ++i) L.logit_src.push_back(L.row0[k] + i);
  }
  const int64_t r = static_cast<int64_t>(L.logit_src.size());
  const int64_t sample_rows = std::max(r, L.batch_padded);
  const int64_t decode_rows = L.batch_padded + L.ns;

  // Layout of the metadata: sizes only, so equal sizes give equal offsets (graphs rely on it).
  const int64_t nwin = static_cast<int64_t>(m.distinct_windows.size());
  cuda_internal::MetaArena a;
  L.ids = a.Reserve<int32_t>(L.total_rows);
  L.slots = a.Reserve<int64_t>(L.total_rows);
  L.dec_pos = a.Reserve<int32_t>(decode_rows);
  L.dec_lens = a.Reserve<int32_t>(L.batch_padded);
  L.dec_tables = a.Reserve<int32_t>(L.batch_padded * L.decode_stride);
  L.sel_spans = a.Reserve<KvSpan>(num_spans);
  const int64_t all_rows = L.ns + L.nx;  // selection rows, then stats rows
  L.sel_offsets = a.Reserve<int32_t>(all_rows + 1);
  L.sel_span_keys = a.Reserve<int32_t>(L.stats_floats > 0 ? num_spans : 0);
  L.sel_stats_base = a.Reserve<int64_t>(L.stats_floats > 0 ? all_rows : 0);
  L.sel_stats_stride = a.Reserve<int32_t>(L.stats_floats > 0 ? all_rows : 0);
  L.sel_scores_base = a.Reserve<int64_t>(L.scores_floats > 0 ? all_rows : 0);
  L.sel_scores_stride = a.Reserve<int32_t>(L.scores_floats > 0 ? all_rows : 0);
  L.stats_rows_src = a.Reserve<int32_t>(L.nx);
  L.stats_rows_pos = a.Reserve<int32_t>(L.nx);
  L.pre_qstart = a.Reserve<int32_t>(L.np + 1);
  L.sp_qstart = a.Reserve<int32_t>(L.nsp + 1);
  L.sp_offsets = a.Reserve<int32_t>(L.nsp + 1);
  L.sp_qpos = a.Reserve<int32_t>(sel_prefill_rows);
  L.pre_lens = a.Reserve<int32_t>(L.np);
  L.pre_tables = a.Reserve<int32_t>(L.np * L.prefill_stride);
  L.pre_windows = a.Reserve<int32_t>(nwin * L.np);
  L.pre_sinks = a.Reserve<int32_t>(L.np);
  L.gather = a.Reserve<int32_t>(r);
  L.s_temp = a.Reserve<float>(sample_rows);
  L.s_topk = a.Reserve<int32_t>(sample_rows);
  L.s_topp = a.Reserve<float>(sample_rows);
  L.s_seed = a.Reserve<uint64_t>(sample_rows);
  L.s_counter = a.Reserve<uint64_t>(sample_rows);
  L.meta_bytes = a.used();
  RETURN_IF_ERROR(m.EnsureMeta(L.meta_bytes));
  char* h = m.meta_host;
  int32_t* ids = At<int32_t>(h, L.ids);
  int64_t* slots = At<int64_t>(h, L.slots);
  int32_t* dec_pos = At<int32_t>(h, L.dec_pos);
  int32_t* dec_lens = At<int32_t>(h, L.dec_lens);
  int32_t* dec_tables = At<int32_t>(h, L.dec_tables);
  KvSpan* spans = At<KvSpan>(h, L.sel_spans);
  int32_t* sel_offsets = At<int32_t>(h, L.sel_offsets);
  int32_t* qstart = At<int32_t>(h, L.pre_qstart);
  int32_t* pre_lens = At<int32_t>(h, L.pre_lens);
  int32_t* pre_tables = At<int32_t>(h, L.pre_tables);
  int32_t* windows = At<int32_t>(h, L.pre_windows);
  int32_t* sinks = At<int32_t>(h, L.pre_sinks);
  int32_t* gather = At<int32_t>(h, L.gather);
  float* temp = At<float>(h, L.s_temp);
  int32_t* topk = At<int32_t>(h, L.s_topk);
  float* topp = At<float>(h, L.s_topp);
  uint64_t* seed = At<uint64_t>(h, L.s_seed);
  uint64_t* counter = At<uint64_t>(h, L.s_counter);

  // Padding rows of the dense-decode bucket: no KV written, nothing attended, token 0.
  std::fill_n(ids, L.batch_padded, 0);
  std::fill_n(slots, L.batch_padded, -1);
  std::fill_n(dec_pos, decode_rows, 0);
  std::fill_n(dec_lens, L.batch_padded, 0);
  std::fill_n(dec_tables, L.batch_padded * L.decode_stride, 0);
  std::fill_n(pre_tables, L.np * L.prefill_stride, 0);
  sel_offsets[0] = 0;
  for (int64_t j = 0; j < all_rows; ++j) {
    const SelRow& r = sel_rows[j];
    if (j < L.ns) {
      dec_pos[L.batch_padded + j] = static_cast<int32_t>(r.pos);
    } else {
      At<int32_t>(h, L.stats_rows_pos)[j - L.ns] = static_cast<int32_t>(r.pos);
    }
    std::copy(r.spans.begin(), r.spans.end(), spans + sel_offsets[j]);  // one type on both sides
    if (L.stats_floats > 0) {
      int32_t* keys = At<int32_t>(h, L.sel_span_keys) + sel_offsets[j];
      if (r.span_keys.empty()) {
        std::fill_n(keys, r.spans.size(), 0);  // rows without statistics: never read
      } else {
        std::copy(r.span_keys.begin(), r.span_keys.end(), keys);
      }
      At<int64_t>(h, L.sel_stats_base)[j] = r.stats_base;
      At<int32_t>(h, L.sel_stats_stride)[j] = r.stats_stride;
    }
    if (L.scores_floats > 0) {
      At<int64_t>(h, L.sel_scores_base)[j] = scores_base[j];
      At<int32_t>(h, L.sel_scores_stride)[j] = static_cast<int32_t>(r.keys);
    }
    sel_offsets[j + 1] = sel_offsets[j] + static_cast<int32_t>(r.spans.size());
  }
  for (size_t k = 0; k < L.order.size(); ++k) {
    const ScheduledSequence& s = plan.seqs[L.order[k]];
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pos = s.start_pos + i;
      ids[L.row0[k] + i] = s.token_ids[i];
      if (s.token_ids[i] == kEmbeddingToken) {
        ids[L.row0[k] + i] = 0;  // gathered, then overwritten
        L.embed_rows.emplace_back(L.row0[k] + i,
                                  EmbeddingRowFor(s.embeddings.get(), s.token_ids[i], pos));
      }
      slots[L.row0[k] + i] = static_cast<int64_t>(s.block_ids[pos / ps]) * ps + pos % ps;
    }
    const int64_t kv_len = s.start_pos + n;
    if (k < static_cast<size_t>(L.nd)) {
      dec_pos[k] = static_cast<int32_t>(s.start_pos);
      dec_lens[k] = static_cast<int32_t>(kv_len);
      std::copy(s.block_ids.begin(), s.block_ids.end(), dec_tables + k * L.decode_stride);
    } else if (k < p0) {
      continue;  // positions and spans above
    } else if (k >= sp0) {
      // Selection prefill: the policy's selection (kept keys + the chunk, own positions).
      const int64_t j = static_cast<int64_t>(k - sp0);
      int32_t* sp_offsets = At<int32_t>(h, L.sp_offsets);
      if (j == 0) sp_offsets[0] = static_cast<int32_t>(sel_row_spans);
      const std::vector<KvSpan>& sel = s.kv_selection->spans;
      std::copy(sel.begin(), sel.end(), spans + sp_offsets[j]);
      sp_offsets[j + 1] = sp_offsets[j] + static_cast<int32_t>(sel.size());
      At<int32_t>(h, L.sp_qstart)[j] = static_cast<int32_t>(L.row0[k] - L.sp_row0);
      for (int64_t i = 0; i < n; ++i) {
        At<int32_t>(h, L.sp_qpos)[L.row0[k] - L.sp_row0 + i] = static_cast<int32_t>(kv_len - n + i);
      }
    } else {
      const int64_t j = static_cast<int64_t>(k - p0);
      qstart[j] = static_cast<int32_t>(L.row0[k] - L.prefill_row0);
      pre_lens[j] = static_cast<int32_t>(kv_len);
      std::copy(s.block_ids.begin(), s.block_ids.end(), pre_tables + j * L.prefill_stride);
      for (int64_t v = 0; v < nwin; ++v) {
        windows[v * L.np + j] =
            static_cast<int32_t>(s.attention->LayerWindow(m.distinct_windows[v]));
      }
      // The prefill kernel's rule mode applies StreamingLLM itself (sinks + window).
      sinks[j] = static_cast<int32_t>(s.attention->Footprint().sinks);
    }
  }
  if (L.np > 0) qstart[L.np] = static_cast<int32_t>(L.sp_row0 - L.prefill_row0);
  if (L.nsp > 0) At<int32_t>(h, L.sp_qstart)[L.nsp] = static_cast<int32_t>(sel_prefill_rows);
  // Stats rows read the q rows of their prefill tokens, in the order AddPolicyRows made them.
  for (size_t k = p0, x = 0; k < L.order.size(); ++k) {
    const ScheduledSequence& s = plan.seqs[L.order[k]];
    if (s.kv_selection == nullptr || s.key_stats_rows == 0) continue;
    const int64_t n = static_cast<int64_t>(s.token_ids.size());
    for (int64_t i = n - s.key_stats_rows; i < n; ++i) {
      At<int32_t>(h, L.stats_rows_src)[x++] = static_cast<int32_t>(L.row0[k] + i);
    }
  }
  for (int64_t i = 0; i < r; ++i) gather[i] = static_cast<int32_t>(L.logit_src[i]);
  std::fill_n(temp, sample_rows, 0.f);
  std::fill_n(topk, sample_rows, 0);
  std::fill_n(topp, sample_rows, 1.f);
  std::fill_n(seed, sample_rows, 0);
  std::fill_n(counter, sample_rows, 0);
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const int32_t o = L.out_row[i];
    if (o < 0 || !plan.seqs[i].device_sampling) continue;
    const DeviceSampling& d = *plan.seqs[i].device_sampling;
    temp[o] = d.temperature;
    topk[o] = d.top_k;
    topp[o] = d.top_p;
    seed[o] = d.seed;
    counter[o] = d.counter;
  }
  return absl::OkStatus();
}

}  // namespace longview
