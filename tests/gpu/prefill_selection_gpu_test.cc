// GPU tests of the selection mode of kernels/cuda/prefill_attention against a double reference
// that implements cpu::SelectionAttention (window 0) literally: per KV head its spans' keys,
// rotated in double at their span positions, each query rotated at its own position and
// attending the keys with position <= it; no visible key gives zeros. As in
// prefill_attention_gpu_test.cc the reference rounds the rotated q and K to the element type.
// Pages no span names are NaN and -1 in the block tables (never read); outputs are NaN-poisoned
// before every run. Selections from SinkWindowSelection and DenseSelection are also
// compared with the rule-based kernel on the same inputs. One summary line per case.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kv_selection.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/prefill_attention/prefill_attention.h"
#include "tests/gpu/gpu_test_util.h"

namespace longview::cuda {
namespace {

struct Geometry {
  std::string name;
  DType dtype = DType::kBF16;
  int head_dim = 128;
  int page_size = 16;
  int num_q_heads = 8;
  int num_kv_heads = 2;
  bool per_head = false;  // selections carry head_begin
};

struct Pool {
  int64_t page_elems = 0, k_offset = 0, v_offset = 0;
  std::vector<uint16_t> pages;
  std::vector<std::vector<int32_t>> tables;  // per sequence: block -> page
};

// Random pages for sequences of `caps` tokens, shuffled page ids, page 0 and 3 spares NaN.
Pool MakePool(const Geometry& c, const std::vector<int>& caps, std::mt19937_64& rng) {
  Pool pool;
  const int64_t row = static_cast<int64_t>(c.num_kv_heads) * c.head_dim;
  const int64_t kv_stride = c.page_size * row;
  pool.page_elems = 2 * 2 * kv_stride;  // two layers, layer 1 read
  pool.k_offset = 2 * kv_stride;
  pool.v_offset = pool.k_offset + kv_stride;
  int total_blocks = 0;
  for (int cap : caps) total_blocks += (cap + c.page_size - 1) / c.page_size;
  const int num_pages = total_blocks + 4;
  std::vector<int32_t> ids(num_pages - 1);
  std::iota(ids.begin(), ids.end(), 1);
  std::shuffle(ids.begin(), ids.end(), rng);
  pool.pages.assign(static_cast<size_t>(num_pages) * pool.page_elems, kPoison);
  std::normal_distribution<float> normal;
  size_t next = 0;
  for (int cap : caps) {
    std::vector<int32_t> table;
    for (int blk = 0; blk < (cap + c.page_size - 1) / c.page_size; ++blk) {
      table.push_back(ids[next++]);
      const int64_t base = static_cast<int64_t>(table.back()) * pool.page_elems;
      for (int64_t e = 0; e < 2 * kv_stride; ++e) {
        pool.pages[base + pool.k_offset + e] = ToBits(normal(rng), c.dtype);
        pool.pages[base + e] = ToBits(normal(rng), c.dtype);
      }
    }
    pool.tables.push_back(table);
  }
  return pool;
}

struct SelSeq {
  KvSelection sel;
  std::vector<int32_t> q_pos;  // one per query row
};

// NaN-fills every page no selection names and marks it -1 in the block tables.
void ReleaseUnselected(const std::vector<SelSeq>& seqs, Pool& pool) {
  std::set<int32_t> used;
  for (const SelSeq& s : seqs) {
    for (const KvSpan& sp : s.sel.spans) used.insert(sp.page_id);
  }
  for (auto& table : pool.tables) {
    for (int32_t& page : table) {
      if (page < 0 || used.count(page) != 0) continue;
      std::fill(pool.pages.begin() + page * pool.page_elems,
                pool.pages.begin() + (page + 1) * pool.page_elems, kPoison);
      page = -1;
    }
  }
}

// cpu::SelectionAttention in double; out [total_q][num_q_heads][D].
std::vector<double> Reference(const Geometry& c, const Pool& pool, const std::vector<SelSeq>& seqs,
                              const std::vector<uint16_t>& q, int64_t q_row_stride,
                              const std::vector<float>& inv_freq) {
  const int D = c.head_dim, half = D / 2, G = c.num_q_heads / c.num_kv_heads;
  const int64_t row = static_cast<int64_t>(c.num_kv_heads) * D;
  auto rnd = [&](double v) {
    return static_cast<double>(FromBits(ToBits(static_cast<float>(v), c.dtype), c.dtype));
  };
  auto rotate = [&](const double* x, int64_t pos, double* y) {
    for (int i = 0; i < half; ++i) {
      const double a = static_cast<double>(pos) * static_cast<double>(inv_freq[i]);
      const double co = std::cos(a), si = std::sin(a);
      y[i] = rnd(x[i] * co - x[half + i] * si);
      y[half + i] = rnd(x[half + i] * co + x[i] * si);
    }
  };
  int total_q = 0;
  for (const SelSeq& s : seqs) total_q += static_cast<int>(s.q_pos.size());
  std::vector<double> out(static_cast<size_t>(total_q) * c.num_q_heads * D, 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  int q0 = 0;
  for (const SelSeq& s : seqs) {
    for (int kh = 0; kh < c.num_kv_heads; ++kh) {
      std::vector<double> keys, values, raw(D);
      std::vector<int64_t> pos;
      for (const KvSpan& sp : s.sel.ForHead(kh)) {
        for (int t = 0; t < sp.count; ++t) {
          const int64_t base = sp.page_id * pool.page_elems + (sp.first_slot + t) * row + kh * D;
          for (int d = 0; d < D; ++d)
            raw[d] = FromBits(pool.pages[base + pool.k_offset + d], c.dtype);
          pos.push_back(sp.first_position + t);
          keys.resize(pos.size() * D);
          rotate(raw.data(), pos.back(), &keys[(pos.size() - 1) * D]);
          for (int d = 0; d < D; ++d) {
            values.push_back(FromBits(pool.pages[base + pool.v_offset + d], c.dtype));
          }
        }
      }
      std::vector<double> qd(D), qr(D), sc(pos.size());
      for (size_t i = 0; i < s.q_pos.size(); ++i) {
        for (int gq = 0; gq < G; ++gq) {
          const int hq = kh * G + gq;
          const uint16_t* qh = &q[static_cast<size_t>(q0 + i) * q_row_stride + hq * D];
          for (int d = 0; d < D; ++d) qd[d] = FromBits(qh[d], c.dtype);
          rotate(qd.data(), s.q_pos[i], qr.data());
          double mx = -INFINITY;
          for (size_t k = 0; k < pos.size(); ++k) {
            if (pos[k] > s.q_pos[i]) continue;
            double dot = 0;
            for (int d = 0; d < D; ++d) dot += qr[d] * keys[k * D + d];
            sc[k] = dot * scale;
            mx = std::max(mx, sc[k]);
          }
          if (mx == -INFINITY) continue;  // no visible key: zeros
          double sum = 0;
          for (size_t k = 0; k < pos.size(); ++k) {
            if (pos[k] <= s.q_pos[i]) sum += (sc[k] = std::exp(sc[k] - mx));
          }
          double* o = &out[(static_cast<size_t>(q0 + i) * c.num_q_heads + hq) * D];
          for (size_t k = 0; k < pos.size(); ++k) {
            if (pos[k] > s.q_pos[i]) continue;
            for (int d = 0; d < D; ++d) o[d] += sc[k] / sum * values[k * D + d];
          }
        }
      }
    }
    q0 += static_cast<int>(s.q_pos.size());
  }
  return out;
}

// CSR rows of a batch of selections (sequence rows, or (sequence, KV head) rows).
struct SpanRows {
  std::vector<KvSpan> spans;
  std::vector<int32_t> offsets{0};
  int max_spans = 1;
  int64_t max_keys_per_head = 1;  // max over KV heads of the batch's keys
  std::vector<int32_t> q_start{0}, q_pos;
};
SpanRows BuildRows(const Geometry& c, const std::vector<SelSeq>& seqs) {
  SpanRows r;
  std::vector<int64_t> head_keys(c.num_kv_heads, 0);
  auto add_row = [&](std::span<const KvSpan> row) {
    for (const KvSpan& s : row) {
      r.spans.push_back({.page_id = s.page_id,
                         .first_slot = s.first_slot,
                         .count = s.count,
                         .first_position = s.first_position});
    }
    r.offsets.push_back(static_cast<int32_t>(r.spans.size()));
    r.max_spans = std::max(r.max_spans, static_cast<int>(row.size()));
  };
  for (const SelSeq& s : seqs) {
    if (c.per_head) {
      for (int h = 0; h < c.num_kv_heads; ++h) add_row(s.sel.ForHead(h));
    } else {
      add_row(s.sel.spans);
    }
    for (int h = 0; h < c.num_kv_heads; ++h) head_keys[h] += s.sel.NumKeys(h);
    r.q_start.push_back(r.q_start.back() + static_cast<int32_t>(s.q_pos.size()));
    r.q_pos.insert(r.q_pos.end(), s.q_pos.begin(), s.q_pos.end());
  }
  for (int64_t k : head_keys) r.max_keys_per_head = std::max(r.max_keys_per_head, k);
  return r;
}

std::string Describe(const Geometry& c, const std::vector<SelSeq>& seqs) {
  std::string s;
  for (size_t i = 0; i < seqs.size() && i < 6; ++i) {
    s += (i ? "," : "") + std::to_string(seqs[i].q_pos.size()) + "q/" +
         std::to_string(seqs[i].sel.spans.size()) + "sp";
  }
  if (seqs.size() > 6) s += ",...(" + std::to_string(seqs.size()) + ")";
  char buf[400];
  std::snprintf(buf, sizeof(buf), "[prefill_sel] %s %s hd=%d ps=%d heads=%d/%d%s seqs=%s",
                c.name.c_str(), DTypeName(c.dtype), c.head_dim, c.page_size, c.num_q_heads,
                c.num_kv_heads, c.per_head ? " per-head" : "", s.c_str());
  return buf;
}

// Inputs shared by the selection and rule runs of one case.
struct Inputs {
  Pool pool;
  std::vector<uint16_t> q;
  int64_t q_row_stride = 0;
  std::vector<float> inv_freq;
  RopeTablesHost tables;
};

Inputs MakeInputs(const Geometry& c, Pool pool, int total_q, int64_t max_pos,
                  std::mt19937_64& rng) {
  Inputs in;
  in.pool = std::move(pool);
  in.q_row_stride = static_cast<int64_t>(c.num_q_heads) * c.head_dim + 8;
  in.q = RandomBits(static_cast<size_t>(std::max(total_q, 1)) * in.q_row_stride, c.dtype, rng, 1.0);
  in.inv_freq = cpu::InvFrequencies(cpu::RopeParams{.head_dim = c.head_dim, .theta = 10000.0});
  in.tables = BuildRopeTables(in.inv_freq, std::max<int64_t>(max_pos, 1));
  return in;
}

// Plans selection mode for the bounds (max_spans, max_total_kv, max_total_q).
cudaError_t PlanSel(const Geometry& c, const Inputs& in, int batch, int max_spans,
                    int64_t max_total_kv, int max_total_q, PrefillAttentionPlan* plan) {
  PrefillAttentionShape shape{.dtype = c.dtype,
                              .head_dim = c.head_dim,
                              .num_q_heads = c.num_q_heads,
                              .num_kv_heads = c.num_kv_heads,
                              .batch_size = batch,
                              .page_size = c.page_size,
                              .max_total_q = std::max(max_total_q, 1),
                              .max_total_kv = max_total_kv,
                              .rope_hi_rows = in.tables.num_hi_rows,
                              .max_spans = max_spans,
                              .spans_per_kv_head = c.per_head};
  const cudaError_t e = PlanPrefillAttention(shape, plan);
  if (e != cudaSuccess) return e;
  return plan->kernel == 0 ? cudaSuccess : cudaErrorUnknown;  // selection runs mma.sync
}

// Device state of selection runs; spans, offsets and positions are rewritten in place.
struct SelDevice {
  SelDevice(const Geometry& c, const Inputs& in, const PrefillAttentionPlan& p, size_t span_cap)
      : plan(p),
        out_elems(static_cast<size_t>(p.shape.max_total_q) * c.num_q_heads * c.head_dim),
        dq(in.q.size() * 2),
        dout(out_elems * 2),
        dpages(in.pool.pages.size() * 2),
        dspans(std::max<size_t>(span_cap, 1) * sizeof(KvSpan)),
        doff((static_cast<size_t>(c.per_head ? c.num_kv_heads : 1) * p.shape.batch_size + 1) * 4),
        dqs((p.shape.batch_size + 1) * 4),
        dqp(static_cast<size_t>(p.shape.max_total_q) * 4),
        dlo(in.tables.lo.size() * 4),
        dhi(in.tables.hi.size() * 4),
        dws(p.workspace_bytes) {
    args = PrefillAttentionArgs{
        .q = dq.get(),
        .q_row_stride = in.q_row_stride,
        .out = dout.get(),
        .pages = dpages.get(),
        .page_stride = in.pool.page_elems,
        .k_offset = in.pool.k_offset,
        .v_offset = in.pool.v_offset,
        .q_start = dqs.as<int32_t>(),
        .spans = dspans.as<KvSpan>(),
        .span_offsets = doff.as<int32_t>(),
        .q_positions = dqp.as<int32_t>(),
        .rope_lo = dlo.as<float>(),
        .rope_hi = dhi.as<float>(),
        .scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)))};
  }
  // Uploads the static inputs and poisons the workspace.
  cudaError_t Init(const Inputs& in) {
    if (!(dq.ok() && dout.ok() && dpages.ok() && dspans.ok() && doff.ok() && dqs.ok() && dqp.ok() &&
          dlo.ok() && dhi.ok() && dws.ok())) {
      return cudaErrorMemoryAllocation;
    }
    cudaError_t e = Upload(dq, in.q);
    if (e == cudaSuccess) e = Upload(dpages, in.pool.pages);
    if (e == cudaSuccess) e = Upload(dlo, in.tables.lo);
    if (e == cudaSuccess) e = Upload(dhi, in.tables.hi);
    if (e == cudaSuccess) e = cudaMemset(dws.get(), 0xFF, plan.workspace_bytes);
    return e;
  }

  PrefillAttentionPlan plan;
  size_t out_elems;
  DeviceBuffer dq, dout, dpages, dspans, doff, dqs, dqp, dlo, dhi, dws;
  PrefillAttentionArgs args;
};

cudaError_t UploadRows(const SpanRows& r, SelDevice& dev) {
  cudaError_t e = cudaSuccess;
  if (!r.spans.empty()) e = Upload(dev.dspans, r.spans);
  if (e == cudaSuccess) e = Upload(dev.doff, r.offsets);
  if (e == cudaSuccess) e = Upload(dev.dqs, r.q_start);
  if (e == cudaSuccess && !r.q_pos.empty()) e = Upload(dev.dqp, r.q_pos);
  return e;
}

std::vector<double> ToDoubles(const std::vector<uint16_t>& bits, DType t) {
  std::vector<double> d(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) d[i] = FromBits(bits[i], t);
  return d;
}

// Checks `got` (first rows of the output) against `ref`; prints one line.
void Check(const Geometry& c, const std::vector<SelSeq>& seqs, const std::vector<uint16_t>& got,
           const std::vector<double>& ref, const char* tag) {
  const Tolerance tol = TolFor(c.dtype);
  const Comparison cmp = Compare(got, c.dtype, ref, tol);
  std::printf("%s %s %s\n", Describe(c, seqs).c_str(), tag, Verdict(cmp, tol).c_str());
  EXPECT_TRUE(cmp.Pass(tol)) << Describe(c, seqs) << " " << tag << " first bad " << cmp.first_bad;
}

// Runs the selection kernel once on `seqs`; returns the output rows (empty on failure).
std::vector<uint16_t> RunSelection(const Geometry& c, const Inputs& in,
                                   const std::vector<SelSeq>& seqs) {
  const SpanRows rows = BuildRows(c, seqs);
  const int total_q = rows.q_start.back();
  PrefillAttentionPlan plan;
  EXPECT_EQ(PlanSel(c, in, static_cast<int>(seqs.size()), rows.max_spans, rows.max_keys_per_head,
                    total_q, &plan),
            cudaSuccess);
  SelDevice dev(c, in, plan, rows.spans.size());
  EXPECT_EQ(dev.Init(in), cudaSuccess);
  EXPECT_EQ(UploadRows(rows, dev), cudaSuccess);
  EXPECT_EQ(cudaMemset(dev.dout.get(), 0xFF, dev.out_elems * 2), cudaSuccess);
  EXPECT_EQ(
      RunPrefillAttention(dev.plan, dev.args, dev.dws.get(), dev.plan.workspace_bytes, nullptr),
      cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<uint16_t> got(static_cast<size_t>(total_q) * c.num_q_heads * c.head_dim);
  EXPECT_EQ(Download(got, dev.dout), cudaSuccess);
  return got;
}

// Runs and checks a selection case against the reference; returns the output rows.
std::vector<uint16_t> SelCase(const Geometry& c, const Inputs& in, const std::vector<SelSeq>& seqs,
                              const char* tag = "") {
  const std::vector<uint16_t> got = RunSelection(c, in, seqs);
  Check(c, seqs, got, Reference(c, in.pool, seqs, in.q, in.q_row_stride, in.inv_freq), tag);
  return got;
}

// The rule-based kernel on the same pool: sequence b has n[b] queries, kv_len[b] keys.
std::vector<uint16_t> RunRule(const Geometry& c, const Inputs& in, const std::vector<int>& n,
                              const std::vector<int>& kv_len, int window, int sinks) {
  const int B = static_cast<int>(n.size());
  int stride = 1, total_q = 0;
  int64_t total_kv = 0;
  for (int b = 0; b < B; ++b) {
    stride = std::max(stride, static_cast<int>(in.pool.tables[b].size()));
    total_q += n[b];
    total_kv += kv_len[b];
  }
  std::vector<int32_t> bt(static_cast<size_t>(B) * stride, -1), qs{0};
  for (int b = 0; b < B; ++b) {
    std::copy(in.pool.tables[b].begin(), in.pool.tables[b].end(), bt.begin() + b * stride);
    qs.push_back(qs.back() + n[b]);
  }
  PrefillAttentionShape shape{.dtype = c.dtype,
                              .head_dim = c.head_dim,
                              .num_q_heads = c.num_q_heads,
                              .num_kv_heads = c.num_kv_heads,
                              .batch_size = B,
                              .page_size = c.page_size,
                              .max_total_q = total_q,
                              .max_total_kv = total_kv,
                              .rope_hi_rows = in.tables.num_hi_rows,
                              .window = window,
                              .sinks = sinks};
  PrefillAttentionPlan plan;
  EXPECT_EQ(PlanPrefillAttention(shape, &plan), cudaSuccess);
  const size_t out_elems = static_cast<size_t>(total_q) * c.num_q_heads * c.head_dim;
  DeviceBuffer dq(in.q.size() * 2), dout(out_elems * 2), dpages(in.pool.pages.size() * 2),
      dbt(bt.size() * 4), dqs(qs.size() * 4), dkv(B * 4), dlo(in.tables.lo.size() * 4),
      dhi(in.tables.hi.size() * 4), dws(plan.workspace_bytes);
  EXPECT_TRUE(Upload(dq, in.q) == cudaSuccess && Upload(dpages, in.pool.pages) == cudaSuccess &&
              Upload(dbt, bt) == cudaSuccess && Upload(dqs, qs) == cudaSuccess &&
              Upload(dkv, kv_len) == cudaSuccess && Upload(dlo, in.tables.lo) == cudaSuccess &&
              Upload(dhi, in.tables.hi) == cudaSuccess &&
              cudaMemset(dout.get(), 0xFF, out_elems * 2) == cudaSuccess);
  PrefillAttentionArgs args{.q = dq.get(),
                            .q_row_stride = in.q_row_stride,
                            .out = dout.get(),
                            .pages = dpages.get(),
                            .page_stride = in.pool.page_elems,
                            .k_offset = in.pool.k_offset,
                            .v_offset = in.pool.v_offset,
                            .block_tables = dbt.as<int32_t>(),
                            .block_table_stride = stride,
                            .q_start = dqs.as<int32_t>(),
                            .kv_lens = dkv.as<int32_t>(),
                            .rope_lo = dlo.as<float>(),
                            .rope_hi = dhi.as<float>(),
                            .scale = static_cast<float>(1.0 / std::sqrt(c.head_dim * 1.0))};
  EXPECT_EQ(RunPrefillAttention(plan, args, dws.get(), plan.workspace_bytes, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<uint16_t> got(out_elems);
  EXPECT_EQ(Download(got, dout), cudaSuccess);
  return got;
}

const int kGroups[] = {1, 4, 8};

// ---------------------------------------------------------------------------------------------
// One query per sequence (SinkWindowSelection is per query): before, at and past eviction.
TEST(PrefillSelectionGpu, SinkWindowSelectionMatchesRuleKernel) {
  std::mt19937_64 rng(Seed() + 201);
  int idx = 0;
  for (DType t : kDTypes) {
    for (int hd : {64, 128}) {
      for (int ps : {1, 8, 16}) {
        const int G = kGroups[idx++ % 3];
        Geometry c{.name = "sink-window",
                   .dtype = t,
                   .head_dim = hd,
                   .page_size = ps,
                   .num_q_heads = 2 * G,
                   .num_kv_heads = 2};
        const int S = 4, W = 40;
        const std::vector<int> tokens = {0, 2, 30, 43, 44, 97, 300, 181};
        std::vector<int> caps, n, kv;
        for (int tk : tokens) caps.push_back(tk + 1), n.push_back(1), kv.push_back(tk + 1);
        Pool pool = MakePool(c, caps, rng);
        std::vector<SelSeq> seqs;
        for (size_t b = 0; b < tokens.size(); ++b) {
          SelSeq s;
          int64_t qpos = 0;
          s.sel = SinkWindowSelection(pool.tables[b], ps, tokens[b], S, W, &qpos);
          s.q_pos = {static_cast<int32_t>(qpos)};
          seqs.push_back(std::move(s));
        }
        ReleaseUnselected(seqs, pool);
        const Inputs in = MakeInputs(c, std::move(pool), static_cast<int>(tokens.size()), 400, rng);
        const std::vector<uint16_t> sel = SelCase(c, in, seqs);
        const std::vector<uint16_t> rule = RunRule(c, in, n, kv, W, S);
        Check(c, seqs, sel, ToDoubles(rule, t), "vs-rule");
      }
    }
  }
}

// Chunks of a dense prefill (cached prefix + chunk): DenseSelection equals dense prefill.
TEST(PrefillSelectionGpu, DenseSelectionMatchesDensePrefill) {
  std::mt19937_64 rng(Seed() + 202);
  int idx = 0;
  const std::vector<int> n = {17, 54, 97, 1, 130, 1, 70}, kv = {17, 120, 97, 1, 130, 45, 201};
  for (DType t : kDTypes) {
    for (int hd : {64, 128}) {
      for (int ps : {1, 8, 16}) {
        const int G = kGroups[idx++ % 3];
        Geometry c{.name = "dense",
                   .dtype = t,
                   .head_dim = hd,
                   .page_size = ps,
                   .num_q_heads = 2 * G,
                   .num_kv_heads = 2};
        Pool pool = MakePool(c, kv, rng);
        std::vector<SelSeq> seqs;
        int total_q = 0;
        for (size_t b = 0; b < n.size(); ++b) {
          SelSeq s;
          s.sel = DenseSelection(pool.tables[b], ps, kv[b]);
          for (int i = 0; i < n[b]; ++i) s.q_pos.push_back(kv[b] - n[b] + i);
          total_q += n[b];
          seqs.push_back(std::move(s));
        }
        const Inputs in = MakeInputs(c, std::move(pool), total_q, 256, rng);
        const std::vector<uint16_t> sel = SelCase(c, in, seqs);
        const std::vector<uint16_t> rule = RunRule(c, in, n, kv, 0, 0);
        Check(c, seqs, sel, ToDoubles(rule, t), "vs-dense");
      }
    }
  }
}

// ReKV: sinks, retrieved blocks (random order, renumbered contiguously), then the chunk
// (starting mid-page: spans shorter than a page) causally; unselected pages -1 / NaN.
SelSeq ReKvSelection(const std::vector<int32_t>& table, int ps, int kv_len, int n, int sinks,
                     int num_retrieved, std::mt19937_64& rng) {
  SelSeq s;
  AppendTokenRange(table, ps, 0, sinks, 0, s.sel);
  int64_t next = sinks;
  const int chunk0 = kv_len - n;
  std::vector<int> blocks;  // whole blocks strictly between the sinks and the chunk
  for (int blk = (sinks + ps - 1) / ps; (blk + 1) * ps <= chunk0; ++blk) blocks.push_back(blk);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  blocks.resize(std::min<size_t>(blocks.size(), num_retrieved));
  for (int blk : blocks) {
    AppendTokenRange(table, ps, static_cast<int64_t>(blk) * ps, ps, next, s.sel);
    next += ps;
  }
  AppendTokenRange(table, ps, chunk0, n, next, s.sel);
  for (int i = 0; i < n; ++i) s.q_pos.push_back(static_cast<int32_t>(next + i));
  return s;
}

TEST(PrefillSelectionGpu, ReKvRenumberedRetrievedBlocks) {
  std::mt19937_64 rng(Seed() + 203);
  int idx = 0;
  for (DType t : kDTypes) {
    for (int hd : {64, 128}) {
      for (int ps : {1, 8, 16}) {
        const int G = kGroups[idx++ % 3];
        Geometry c{.name = "rekv",
                   .dtype = t,
                   .head_dim = hd,
                   .page_size = ps,
                   .num_q_heads = 2 * G,
                   .num_kv_heads = 2};
        const std::vector<int> kv = {300, 517, 90}, n = {37, 100, 90};
        Pool pool = MakePool(c, kv, rng);
        std::vector<SelSeq> seqs;
        int total_q = 0;
        for (size_t b = 0; b < kv.size(); ++b) {
          seqs.push_back(ReKvSelection(pool.tables[b], ps, kv[b], n[b], 4, 80 / ps + 1, rng));
          total_q += n[b];
        }
        ReleaseUnselected(seqs, pool);
        const Inputs in = MakeInputs(c, std::move(pool), total_q, 600, rng);
        (void)SelCase(c, in, seqs);
      }
    }
  }
}

// HiP-like: per KV head a random subset of blocks in random order, each possibly cut to a
// sub-range of its page, at positions shifted by a per-head offset, plus the chunk after them;
// sequence 1's last head row is empty, sequence 2's queries sit before every key (zeros).
std::vector<SelSeq> PerHeadSelections(const Geometry& c, const Pool& pool,
                                      const std::vector<int>& kv, const std::vector<int>& n,
                                      std::mt19937_64& rng) {
  const int ps = c.page_size;
  std::vector<SelSeq> seqs;
  for (size_t b = 0; b < kv.size(); ++b) {
    SelSeq s;
    const int chunk0 = kv[b] - n[b];
    const int shift = b == 2 ? 50 : 0;
    for (int h = 0; h < c.num_kv_heads; ++h) {
      s.sel.head_begin.push_back(static_cast<int32_t>(s.sel.spans.size()));
      if (b == 1 && h == c.num_kv_heads - 1) continue;  // empty head row
      std::vector<int> blocks;
      for (int blk = 0; (blk + 1) * ps <= chunk0; ++blk) {
        if (rng() % 3 != 0) blocks.push_back(blk);
      }
      std::shuffle(blocks.begin(), blocks.end(), rng);
      for (int blk : blocks) {
        int first = 0, count = ps;
        if (ps > 1 && rng() % 2 == 0) {
          first = static_cast<int>(rng() % ps);
          count = 1 + static_cast<int>(rng() % (ps - first));
        }
        s.sel.spans.push_back(
            {.page_id = pool.tables[b][blk],
             .first_slot = first,
             .count = count,
             .first_position = static_cast<int64_t>(blk) * ps + first + h + shift});
      }
      AppendTokenRange(pool.tables[b], ps, chunk0, n[b], chunk0 + c.num_kv_heads + shift,
                            s.sel);
    }
    s.sel.head_begin.push_back(static_cast<int32_t>(s.sel.spans.size()));
    for (int i = 0; i < n[b]; ++i) {
      s.q_pos.push_back(b == 2 ? i : chunk0 + c.num_kv_heads + i);
    }
    seqs.push_back(std::move(s));
  }
  return seqs;
}

TEST(PrefillSelectionGpu, PerKvHeadRandomBlocks) {
  std::mt19937_64 rng(Seed() + 204);
  int idx = 0;
  for (DType t : kDTypes) {
    for (int hd : {64, 128}) {
      for (int ps : {1, 8, 16}) {
        const int G = kGroups[idx++ % 3];
        Geometry c{.name = "per-head",
                   .dtype = t,
                   .head_dim = hd,
                   .page_size = ps,
                   .num_q_heads = 4 * G,
                   .num_kv_heads = 4,
                   .per_head = true};
        const std::vector<int> kv = {260, 150, 40, 77}, n = {70, 33, 5, 77};
        Pool pool = MakePool(c, kv, rng);
        std::vector<SelSeq> seqs = PerHeadSelections(c, pool, kv, n, rng);
        ReleaseUnselected(seqs, pool);
        const Inputs in = MakeInputs(c, std::move(pool), 185, 300, rng);
        (void)SelCase(c, in, seqs);
      }
    }
  }
}

// Empty selections (no spans, zero-count spans), a sequence without queries, and a chunk of
// many queries over a long selection.
TEST(PrefillSelectionGpu, EmptySelectionsAndLongChunk) {
  std::mt19937_64 rng(Seed() + 205);
  for (DType t : kDTypes) {
    Geometry c{.name = "empty",
               .dtype = t,
               .head_dim = 64,
               .page_size = 8,
               .num_q_heads = 4,
               .num_kv_heads = 1};
    const std::vector<int> kv = {40, 40, 40};
    Pool pool = MakePool(c, kv, rng);
    std::vector<SelSeq> seqs(4);
    seqs[0].q_pos = {0, 5, 9};  // no spans at all
    seqs[1].sel.spans = {{.page_id = pool.tables[1][0], .first_slot = 3, .count = 0}};
    seqs[1].q_pos = {7};
    seqs[2].sel = DenseSelection(pool.tables[2], 8, 40);  // no queries
    seqs[3].sel = DenseSelection(pool.tables[0], 8, 12);
    seqs[3].q_pos = {11, 3, 0};
    ReleaseUnselected(seqs, pool);
    const Inputs in = MakeInputs(c, std::move(pool), 7, 64, rng);
    (void)SelCase(c, in, seqs);
  }
  Geometry c{.name = "long-chunk",
             .dtype = DType::kBF16,
             .head_dim = 128,
             .page_size = 16,
             .num_q_heads = 8,
             .num_kv_heads = 1};
  Pool pool = MakePool(c, {1200}, rng);
  std::vector<SelSeq> seqs = {ReKvSelection(pool.tables[0], 16, 1200, 500, 4, 30, rng)};
  ReleaseUnselected(seqs, pool);
  const Inputs in = MakeInputs(c, std::move(pool), 500, 1300, rng);
  (void)SelCase(c, in, seqs);
}

// Captured once, replayed after rewriting spans, offsets, positions and q_start in place.
TEST(PrefillSelectionGpu, GraphReplayWithRewrittenSpans) {
  std::mt19937_64 rng(Seed() + 206);
  for (bool per_head : {false, true}) {
    Geometry c{.name = per_head ? "graph-per-head" : "graph",
               .head_dim = 128,
               .page_size = 8,
               .num_q_heads = 8,
               .num_kv_heads = 2,
               .per_head = per_head};
    const std::vector<int> kv = {200, 150};
    Pool pool = MakePool(c, kv, rng);
    std::vector<SelSeq> a, b;
    if (per_head) {
      a = PerHeadSelections(c, pool, kv, {40, 20}, rng);
      b = PerHeadSelections(c, pool, kv, {9, 70}, rng);
    } else {
      a = {ReKvSelection(pool.tables[0], 8, 200, 40, 4, 6, rng),
           ReKvSelection(pool.tables[1], 8, 150, 20, 2, 3, rng)};
      b = {ReKvSelection(pool.tables[0], 8, 200, 9, 1, 12, rng),
           ReKvSelection(pool.tables[1], 8, 150, 70, 4, 5, rng)};
    }
    std::vector<SelSeq> both = a;
    both.insert(both.end(), b.begin(), b.end());
    ReleaseUnselected(both, pool);
    const Inputs in = MakeInputs(c, std::move(pool), 80, 300, rng);
    const SpanRows ra = BuildRows(c, a), rb = BuildRows(c, b);
    PrefillAttentionPlan plan;
    CUDA_OK(PlanSel(c, in, 2, std::max(ra.max_spans, rb.max_spans),
                    std::max(ra.max_keys_per_head, rb.max_keys_per_head), 80, &plan));
    SelDevice dev(c, in, plan, std::max(ra.spans.size(), rb.spans.size()));
    CUDA_OK(dev.Init(in));
    CUDA_OK(UploadRows(ra, dev));
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const cudaError_t run_err =
        RunPrefillAttention(dev.plan, dev.args, dev.dws.get(), dev.plan.workspace_bytes, stream);
    CUDA_OK(cudaStreamEndCapture(stream, &graph));
    CUDA_OK(run_err);
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    for (const auto* seqs : {&a, &b}) {
      CUDA_OK(cudaStreamSynchronize(stream));
      CUDA_OK(UploadRows(BuildRows(c, *seqs), dev));
      for (int rep = 0; rep < 2; ++rep) {
        CUDA_OK(cudaMemsetAsync(dev.dout.get(), 0xFF, dev.out_elems * 2, stream));
        CUDA_OK(cudaGraphLaunch(exec, stream));
      }
      CUDA_OK(cudaStreamSynchronize(stream));
      std::vector<uint16_t> got(static_cast<size_t>(BuildRows(c, *seqs).q_start.back()) *
                                c.num_q_heads * c.head_dim);
      CUDA_OK(Download(got, dev.dout));
      Check(c, *seqs, got, Reference(c, in.pool, *seqs, in.q, in.q_row_stride, in.inv_freq),
            seqs == &a ? "graph" : "graph-replay");
    }
    CUDA_OK(cudaGraphExecDestroy(exec));
    CUDA_OK(cudaGraphDestroy(graph));
    CUDA_OK(cudaStreamDestroy(stream));
  }
}

// Bad rows give NaN for their own heads only: too many spans, a malformed span, a query
// position beyond the RoPE tables. Rows: (seq 0, head 0) 8 spans > max_spans 7; (seq 1, head 0)
// one span with count > page_size; query row 13 at the tables' end.
TEST(PrefillSelectionGpu, BadRowsGiveNaN) {
  std::mt19937_64 rng(Seed() + 207);
  Geometry c{.name = "bad-rows",
             .dtype = DType::kFP16,
             .head_dim = 64,
             .page_size = 8,
             .num_q_heads = 4,
             .num_kv_heads = 2,
             .per_head = true};
  Pool pool = MakePool(c, {64, 64}, rng);
  auto heads = [&](int b, int keys0, int keys1) {
    SelSeq s;
    AppendTokenRange(pool.tables[b], 8, 0, keys0, 0, s.sel);
    s.sel.head_begin = {0, static_cast<int32_t>(s.sel.spans.size())};
    AppendTokenRange(pool.tables[b], 8, 0, keys1, 0, s.sel);
    s.sel.head_begin.push_back(static_cast<int32_t>(s.sel.spans.size()));
    return s;
  };
  std::vector<SelSeq> seqs = {heads(0, 64, 16), heads(1, 32, 48)};
  for (int i = 0; i < 10; ++i) seqs[0].q_pos.push_back(54 + i), seqs[1].q_pos.push_back(38 + i);
  const Inputs in = MakeInputs(c, std::move(pool), 20, 100, rng);
  SpanRows rows = BuildRows(c, seqs);
  ASSERT_EQ(rows.max_spans, 8);
  PrefillAttentionPlan plan;
  CUDA_OK(PlanSel(c, in, 2, 7, rows.max_keys_per_head, 20, &plan));
  SelDevice dev(c, in, plan, rows.spans.size());
  CUDA_OK(dev.Init(in));
  rows.spans[rows.offsets[2] + 1].count = c.page_size + 1;
  rows.q_pos[13] = in.tables.num_hi_rows * 1024;
  CUDA_OK(UploadRows(rows, dev));
  CUDA_OK(cudaMemset(dev.dout.get(), 0, dev.out_elems * 2));
  CUDA_OK(
      RunPrefillAttention(dev.plan, dev.args, dev.dws.get(), dev.plan.workspace_bytes, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<uint16_t> got(20 * c.num_q_heads * c.head_dim);
  CUDA_OK(Download(got, dev.dout));
  const std::vector<double> ref = Reference(c, in.pool, seqs, in.q, in.q_row_stride, in.inv_freq);
  int64_t wrong = 0;
  for (int row = 0; row < 20; ++row) {
    for (int h = 0; h < c.num_q_heads; ++h) {
      const int kvh = h / (c.num_q_heads / c.num_kv_heads);
      const bool nan_expected = kvh == 0 || row == 13;  // rows (0, 0), (1, 0); query 13
      for (int d = 0; d < c.head_dim; ++d) {
        const size_t i = (static_cast<size_t>(row) * c.num_q_heads + h) * c.head_dim + d;
        const double g = FromBits(got[i], c.dtype);
        const bool ok =
            nan_expected ? std::isnan(g) : std::fabs(g - ref[i]) <= 2e-3 + 2e-3 * std::fabs(ref[i]);
        wrong += ok ? 0 : 1;
      }
    }
  }
  std::printf("[prefill_sel] bad rows give NaN, others exact: %s (wrong=%lld)\n",
              wrong == 0 ? "PASS" : "FAIL", static_cast<long long>(wrong));
  EXPECT_EQ(wrong, 0);
}

TEST(PrefillSelectionGpu, PlanRejectsBadSelectionShapes) {
  const PrefillAttentionShape good{.dtype = DType::kBF16,
                                   .head_dim = 64,
                                   .num_q_heads = 8,
                                   .num_kv_heads = 2,
                                   .batch_size = 2,
                                   .page_size = 16,
                                   .max_total_q = 100,
                                   .max_total_kv = 200,
                                   .rope_hi_rows = 1,
                                   .max_spans = 8,
                                   .spans_per_kv_head = true};
  PrefillAttentionPlan plan;
  ASSERT_EQ(PlanPrefillAttention(good, &plan), cudaSuccess);
  EXPECT_EQ(plan.kernel, 0);
  PrefillAttentionShape hd128 = good;
  hd128.head_dim = 128;
  PrefillAttentionPlan plan128;
  ASSERT_EQ(PlanPrefillAttention(hd128, &plan128), cudaSuccess);
  EXPECT_EQ(plan128.kernel, 0) << "selection mode must run the mma.sync kernel";
  auto rejects = [&](PrefillAttentionShape s, const char* what) {
    PrefillAttentionPlan p;
    const cudaError_t e = PlanPrefillAttention(s, &p);
    std::printf("[prefill_sel] plan rejects %s: %s\n", what,
                e == cudaErrorInvalidValue ? "PASS" : "FAIL");
    EXPECT_EQ(e, cudaErrorInvalidValue) << what;
  };
  PrefillAttentionShape s = good;
  s.window = 16;
  rejects(s, "selection with a window");
  s = good, s.window = 16, s.sinks = 4;
  rejects(s, "selection with sinks");
  s = good, s.max_spans = -1;
  rejects(s, "negative max_spans");
  s = good, s.max_spans = 0;
  rejects(s, "spans_per_kv_head without max_spans");
  s = good, s.max_total_kv = int64_t{1} << 30;
  rejects(s, "key capacity past int32");
  s = good, s.head_dim = 96;
  rejects(s, "head_dim 96");
  // Run rejects selection mode without spans, offsets or positions.
  PrefillAttentionArgs a{.q = reinterpret_cast<void*>(256),
                         .q_row_stride = 8 * 64,
                         .out = reinterpret_cast<void*>(256),
                         .pages = reinterpret_cast<void*>(256),
                         .page_stride = 4096,
                         .q_start = reinterpret_cast<int32_t*>(256),
                         .spans = reinterpret_cast<KvSpan*>(256),
                         .span_offsets = reinterpret_cast<int32_t*>(256),
                         .rope_lo = reinterpret_cast<float*>(256),
                         .rope_hi = reinterpret_cast<float*>(256),
                         .scale = 0.1f};
  EXPECT_EQ(
      RunPrefillAttention(plan, a, reinterpret_cast<void*>(256), plan.workspace_bytes, nullptr),
      cudaErrorInvalidValue);  // q_positions missing
  a.q_positions = reinterpret_cast<int32_t*>(256);
  a.spans = reinterpret_cast<KvSpan*>(260);
  EXPECT_EQ(
      RunPrefillAttention(plan, a, reinterpret_cast<void*>(256), plan.workspace_bytes, nullptr),
      cudaErrorInvalidValue);  // spans misaligned
}

}  // namespace
}  // namespace longview::cuda
