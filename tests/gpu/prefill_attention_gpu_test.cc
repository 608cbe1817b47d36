// GPU tests of kernels/cuda/prefill_attention against a double reference that implements the CPU
// engine's semantics literally (engine/cpu_model.cc, kernels/kv_selection.h): per query its
// selection (causal, window, StreamingLLM sinks with re-assigned positions), keys and the query
// rotated in double at those positions. Outputs are NaN-poisoned before every run; pages the
// kernel must not read are NaN (or -1 in the block table). One summary line per case.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/prefill_attention/prefill_attention.h"
#include "tests/gpu/gpu_test_util.h"

namespace longview::cuda {
namespace {

struct Seq {
  int n;            // query rows (the last n tokens)
  int kv_len;       // keys in the cache, queries included
  int window = -1;  // -1: the case's window
  int sinks = -1;   // -1: the case's sinks
};

struct PrefillCase {
  std::string name;
  DType dtype = DType::kBF16;
  int head_dim = 128;
  int page_size = 16;
  int num_q_heads = 8;
  int num_kv_heads = 2;
  std::vector<Seq> seqs;
  int window = 0;
  int sinks = 0;
  bool per_seq_arrays = false;  // pass window/sinks as device arrays
  bool release_pages = false;   // -1 for blocks no query of the chunk sees
  int q_extra = 0;              // q_row_stride = num_q_heads * head_dim + q_extra
};

int WindowOf(const PrefillCase& c, const Seq& s) { return s.window >= 0 ? s.window : c.window; }
int SinksOf(const PrefillCase& c, const Seq& s) { return s.sinks >= 0 ? s.sinks : c.sinks; }

// Host copy of the KV pool and block tables, sized for kv capacities `caps`.
struct Pool {
  int64_t page_elems = 0, k_offset = 0, v_offset = 0;
  int bt_stride = 0;
  std::vector<uint16_t> pages;
  std::vector<int32_t> block_tables;
};

Pool MakePool(const PrefillCase& c, const std::vector<int>& caps, std::mt19937_64& rng) {
  Pool pool;
  const int D = c.head_dim, B = static_cast<int>(caps.size());
  const int64_t row = static_cast<int64_t>(c.num_kv_heads) * D;
  const int64_t kv_stride = c.page_size * row;
  const int num_layers = 2, layer = 1;
  pool.page_elems = num_layers * 2 * kv_stride;
  pool.k_offset = layer * 2 * kv_stride;
  pool.v_offset = pool.k_offset + kv_stride;
  int max_blocks = 1, total_blocks = 0;
  for (int cap : caps) {
    const int nb = (cap + c.page_size - 1) / c.page_size;
    max_blocks = std::max(max_blocks, nb);
    total_blocks += nb;
  }
  pool.bt_stride = max_blocks + 1;
  // Page 0 stays NaN and fills unused entries: any stray read shows as NaN.
  const int num_pages = total_blocks + 3;
  std::vector<int32_t> ids(num_pages - 1);
  std::iota(ids.begin(), ids.end(), 1);
  std::shuffle(ids.begin(), ids.end(), rng);
  pool.block_tables.assign(static_cast<size_t>(B) * pool.bt_stride, 0);
  pool.pages.assign(static_cast<size_t>(num_pages) * pool.page_elems, kPoison);
  std::normal_distribution<float> normal;
  size_t next = 0;
  for (int b = 0; b < B; ++b) {
    const int nb = (caps[b] + c.page_size - 1) / c.page_size;
    for (int blk = 0; blk < nb; ++blk) pool.block_tables[b * pool.bt_stride + blk] = ids[next++];
    for (int j = 0; j < caps[b]; ++j) {
      const int64_t base =
          static_cast<int64_t>(pool.block_tables[b * pool.bt_stride + j / c.page_size]) *
              pool.page_elems +
          (j % c.page_size) * row;
      for (int64_t e = 0; e < row; ++e) {
        pool.pages[base + pool.k_offset + e] = ToBits(normal(rng), c.dtype);
        pool.pages[base + pool.v_offset + e] = ToBits(normal(rng), c.dtype);
        pool.pages[base + e] = ToBits(normal(rng), c.dtype);  // layer 0: present, not read
      }
    }
  }
  return pool;
}

// Marks -1 (and NaN-fills) every block that holds no key any query of the chunk sees.
void ReleasePages(const PrefillCase& c, Pool& pool) {
  for (size_t b = 0; b < c.seqs.size(); ++b) {
    const Seq& s = c.seqs[b];
    const int W = WindowOf(c, s), S = SinksOf(c, s);
    if (W <= 0) continue;
    const int lo = std::max(0, s.kv_len - s.n - W + 1);
    const int nb = (s.kv_len + c.page_size - 1) / c.page_size;
    for (int blk = 0; blk < nb; ++blk) {
      const int first = blk * c.page_size, last = first + c.page_size - 1;
      if (first >= S && last < lo) pool.block_tables[b * pool.bt_stride + blk] = -1;
    }
  }
}

// out [total_q][num_q_heads][D]; q [total_q][q_row_stride].
// The kernels feed the tensor cores rotated q and K in the element type (rotation in float32,
// one rounding: kernels/cuda/prefill_attention/NOTES.md), as every bf16 / fp16 attention does
// (SDPA keeps rotated keys in bf16). The reference rounds the exactly rotated q and K the same
// way, so the tolerance measures the kernel's arithmetic (scores, softmax, P·V) rather than
// the input rounding, which for head_dim 64 in bf16 alone moves outputs by up to ~1e-2.
std::vector<double> Reference(const PrefillCase& c, const std::vector<uint16_t>& q,
                              int64_t q_row_stride, const Pool& pool,
                              const std::vector<float>& inv_freq) {
  const int D = c.head_dim, half = D / 2, G = c.num_q_heads / c.num_kv_heads;
  const int64_t row = static_cast<int64_t>(c.num_kv_heads) * D;
  int max_kv = 1, total_q = 0;
  for (const Seq& s : c.seqs) max_kv = std::max(max_kv, s.kv_len), total_q += s.n;
  std::vector<double> cs(static_cast<size_t>(max_kv) * half), sn(cs.size());
  for (int p = 0; p < max_kv; ++p) {
    for (int i = 0; i < half; ++i) {
      const double a = static_cast<double>(p) * static_cast<double>(inv_freq[i]);
      cs[static_cast<size_t>(p) * half + i] = std::cos(a);
      sn[static_cast<size_t>(p) * half + i] = std::sin(a);
    }
  }
  auto round_to_dtype = [&](double v) {
    return static_cast<double>(FromBits(ToBits(static_cast<float>(v), c.dtype), c.dtype));
  };
  auto rotate = [&](const double* x, int64_t pos, double* y) {
    for (int i = 0; i < half; ++i) {
      const double co = cs[pos * half + i], si = sn[pos * half + i];
      y[i] = round_to_dtype(x[i] * co - x[half + i] * si);
      y[half + i] = round_to_dtype(x[half + i] * co + x[i] * si);
    }
  };
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> out(static_cast<size_t>(total_q) * c.num_q_heads * D, 0.0);
  int q0 = 0;
  for (size_t b = 0; b < c.seqs.size(); ++b) {
    const Seq& s = c.seqs[b];
    const int W = WindowOf(c, s), S = SinksOf(c, s);
    // Raw keys / values as doubles, [j][kv_head][D].
    std::vector<double> kraw(static_cast<size_t>(s.kv_len) * row), vraw(kraw.size());
    auto load = [&](int j) {
      const int32_t page = pool.block_tables[b * pool.bt_stride + j / c.page_size];
      const int64_t base = static_cast<int64_t>(page) * pool.page_elems + (j % c.page_size) * row;
      for (int64_t e = 0; e < row; ++e) {
        kraw[j * row + e] = FromBits(pool.pages[base + pool.k_offset + e], c.dtype);
        vraw[j * row + e] = FromBits(pool.pages[base + pool.v_offset + e], c.dtype);
      }
    };
    for (int j = 0; j < s.kv_len; ++j) {  // released blocks are never selected below
      if (pool.block_tables[b * pool.bt_stride + j / c.page_size] >= 0) load(j);
    }
    for (int i = 0; i < s.n; ++i) {
      const int t = s.kv_len - s.n + i;
      // The query's selection: (key, position) pairs and the query's position.
      std::vector<std::pair<int, int64_t>> sel;
      int64_t q_pos = t;
      if (W > 0 && S > 0) {  // SinkWindowSelection
        const int num_sinks = std::min(S, t + 1);
        for (int j = 0; j < num_sinks; ++j) sel.push_back({j, j});
        const int start = std::max(num_sinks, t - W + 1);
        for (int j = start; j <= t; ++j) sel.push_back({j, num_sinks + (j - start)});
        q_pos = num_sinks + (t - start);
      } else {  // dense or model window: positions are token indices
        for (int j = (W > 0 ? std::max(0, t - W + 1) : 0); j <= t; ++j) sel.push_back({j, j});
      }
      std::vector<double> krot(sel.size() * D), qr(D), qd(D), sc(sel.size());
      for (int kh = 0; kh < c.num_kv_heads; ++kh) {
        for (size_t k = 0; k < sel.size(); ++k) {
          rotate(&kraw[sel[k].first * row + kh * D], sel[k].second, &krot[k * D]);
        }
        for (int gq = 0; gq < G; ++gq) {
          const int hq = kh * G + gq;
          const uint16_t* qh = &q[static_cast<size_t>(q0 + i) * q_row_stride + hq * D];
          for (int d = 0; d < D; ++d) qd[d] = FromBits(qh[d], c.dtype);
          rotate(qd.data(), q_pos, qr.data());
          double mx = -INFINITY;
          for (size_t k = 0; k < sel.size(); ++k) {
            double dot = 0;
            for (int d = 0; d < D; ++d) dot += qr[d] * krot[k * D + d];
            sc[k] = dot * scale;
            mx = std::max(mx, sc[k]);
          }
          double sum = 0;
          for (auto& v : sc) sum += (v = std::exp(v - mx));
          double* o = &out[(static_cast<size_t>(q0 + i) * c.num_q_heads + hq) * D];
          for (size_t k = 0; k < sel.size(); ++k) {
            const double* vd = &vraw[sel[k].first * row + kh * D];
            for (int d = 0; d < D; ++d) o[d] += sc[k] / sum * vd[d];
          }
        }
      }
    }
    q0 += s.n;
  }
  return out;
}

// Device state of one run: uploads, plan, args. Lengths can be re-uploaded (graph case).
struct Fixture {
  PrefillAttentionPlan plan;
  DeviceBuffer dq, dout, dpages, dbt, dqs, dkv, dwin, dsink, dlo, dhi, dws;
  PrefillAttentionArgs args;
};

std::vector<int32_t> QStart(const std::vector<Seq>& seqs) {
  std::vector<int32_t> qs{0};
  for (const Seq& s : seqs) qs.push_back(qs.back() + s.n);
  return qs;
}

std::string Describe(const PrefillCase& c) {
  std::string seqs;
  for (size_t i = 0; i < c.seqs.size(); ++i) {
    seqs += (i ? "," : "") + std::to_string(c.seqs[i].n) + "/" + std::to_string(c.seqs[i].kv_len);
    if (c.seqs[i].window >= 0) {
      seqs += "w" + std::to_string(c.seqs[i].window) + "s" + std::to_string(c.seqs[i].sinks);
    }
  }
  char buf[512];
  std::snprintf(buf, sizeof(buf), "[prefill_attn] %s %s hd=%d ps=%d heads=%d/%d W=%d S=%d seqs=%s",
                c.name.c_str(), DTypeName(c.dtype), c.head_dim, c.page_size, c.num_q_heads,
                c.num_kv_heads, c.window, c.sinks, seqs.c_str());
  return buf;
}

// Runs case `c` (optionally under graph capture, then replays with `replay` lengths on the same
// pool) and checks every result against the reference.
void RunCase(const PrefillCase& c, std::mt19937_64& rng, const PrefillCase* replay = nullptr) {
  const int D = c.head_dim, B = static_cast<int>(c.seqs.size());
  std::vector<int> caps(B);
  int total_q = 0, max_total_q = 0;
  int64_t total_kv = 0;
  for (int b = 0; b < B; ++b) {
    caps[b] = c.seqs[b].kv_len;
    if (replay != nullptr) caps[b] = std::max(caps[b], replay->seqs[b].kv_len);
    total_q += c.seqs[b].n;
    total_kv += caps[b];
  }
  max_total_q = total_q;
  if (replay != nullptr) {
    int rq = 0;
    for (const Seq& s : replay->seqs) rq += s.n;
    max_total_q = std::max(total_q, rq);
  }
  Pool pool = MakePool(c, caps, rng);
  if (c.release_pages) ReleasePages(c, pool);
  const int64_t q_row_stride = static_cast<int64_t>(c.num_q_heads) * D + c.q_extra;
  std::vector<uint16_t> q =
      RandomBits(static_cast<size_t>(max_total_q) * q_row_stride, c.dtype, rng, 1.0);
  cpu::RopeParams rp{.head_dim = D, .theta = 10000.0};
  const std::vector<float> inv_freq = cpu::InvFrequencies(rp);
  int max_kv = 1;
  for (int cap : caps) max_kv = std::max(max_kv, cap);
  const RopeTablesHost tables = BuildRopeTables(inv_freq, max_kv - 1);

  PrefillAttentionShape shape{.dtype = c.dtype,
                              .head_dim = D,
                              .num_q_heads = c.num_q_heads,
                              .num_kv_heads = c.num_kv_heads,
                              .batch_size = B,
                              .page_size = c.page_size,
                              .max_total_q = max_total_q,
                              .max_total_kv = total_kv,
                              .rope_hi_rows = tables.num_hi_rows,
                              .window = c.per_seq_arrays ? 0 : c.window,
                              .sinks = c.per_seq_arrays ? 0 : c.sinks};
  PrefillAttentionPlan plan;
  CUDA_OK(PlanPrefillAttention(shape, &plan));
  const size_t out_elems = static_cast<size_t>(max_total_q) * c.num_q_heads * D;
  DeviceBuffer dq(q.size() * 2), dout(out_elems * 2), dpages(pool.pages.size() * 2),
      dbt(pool.block_tables.size() * 4), dqs((B + 1) * 4), dkv(B * 4), dwin(B * 4), dsink(B * 4),
      dlo(tables.lo.size() * 4), dhi(tables.hi.size() * 4), dws(plan.workspace_bytes);
  ASSERT_TRUE(dq.ok() && dout.ok() && dpages.ok() && dbt.ok() && dqs.ok() && dkv.ok() &&
              dwin.ok() && dsink.ok() && dlo.ok() && dhi.ok() && dws.ok());
  CUDA_OK(Upload(dq, q));
  CUDA_OK(Upload(dpages, pool.pages));
  CUDA_OK(Upload(dlo, tables.lo));
  CUDA_OK(Upload(dhi, tables.hi));
  CUDA_OK(cudaMemset(dws.get(), 0xFF, plan.workspace_bytes));
  auto upload_lengths = [&](const PrefillCase& cc) -> cudaError_t {
    std::vector<int32_t> qs = QStart(cc.seqs), kv, win, sink;
    for (const Seq& s : cc.seqs) {
      kv.push_back(s.kv_len);
      win.push_back(WindowOf(cc, s));
      sink.push_back(SinksOf(cc, s));
    }
    Pool p2 = pool;  // block tables of this case's release pattern
    if (cc.release_pages) ReleasePages(cc, p2);
    cudaError_t e = Upload(dqs, qs);
    if (e == cudaSuccess) e = Upload(dkv, kv);
    if (e == cudaSuccess) e = Upload(dwin, win);
    if (e == cudaSuccess) e = Upload(dsink, sink);
    if (e == cudaSuccess) e = Upload(dbt, p2.block_tables);
    return e;
  };
  CUDA_OK(upload_lengths(c));
  PrefillAttentionArgs args{.q = dq.get(),
                            .q_row_stride = q_row_stride,
                            .out = dout.get(),
                            .pages = dpages.get(),
                            .page_stride = pool.page_elems,
                            .k_offset = pool.k_offset,
                            .v_offset = pool.v_offset,
                            .block_tables = dbt.as<int32_t>(),
                            .block_table_stride = pool.bt_stride,
                            .q_start = dqs.as<int32_t>(),
                            .kv_lens = dkv.as<int32_t>(),
                            .window = c.per_seq_arrays ? dwin.as<int32_t>() : nullptr,
                            .sinks = c.per_seq_arrays ? dsink.as<int32_t>() : nullptr,
                            .rope_lo = dlo.as<float>(),
                            .rope_hi = dhi.as<float>(),
                            .scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)))};

  auto check = [&](const PrefillCase& cc, const char* tag) {
    int tq = 0;
    for (const Seq& s : cc.seqs) tq += s.n;
    std::vector<uint16_t> got(out_elems);
    CUDA_OK(Download(got, dout));
    got.resize(static_cast<size_t>(tq) * c.num_q_heads * D);
    Pool p2 = pool;
    if (cc.release_pages) ReleasePages(cc, p2);
    const std::vector<double> ref = Reference(cc, q, q_row_stride, p2, inv_freq);
    const Tolerance tol = TolFor(c.dtype);
    const Comparison cmp = Compare(got, c.dtype, ref, tol);
    std::printf("%s%s %s\n", Describe(cc).c_str(), tag, Verdict(cmp, tol).c_str());
    EXPECT_TRUE(cmp.Pass(tol)) << Describe(cc) << tag << " first bad " << cmp.first_bad;
  };

  if (replay == nullptr) {
    CUDA_OK(cudaMemset(dout.get(), 0xFF, out_elems * 2));
    CUDA_OK(RunPrefillAttention(plan, args, dws.get(), plan.workspace_bytes, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    check(c, "");
    return;
  }
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  const cudaError_t run_err =
      RunPrefillAttention(plan, args, dws.get(), plan.workspace_bytes, stream);
  CUDA_OK(cudaStreamEndCapture(stream, &graph));
  CUDA_OK(run_err);
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  for (const PrefillCase* cc : {&c, replay}) {
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(upload_lengths(*cc));
    for (int rep = 0; rep < 2; ++rep) {
      CUDA_OK(cudaMemsetAsync(dout.get(), 0xFF, out_elems * 2, stream));
      CUDA_OK(cudaGraphLaunch(exec, stream));
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    check(*cc, cc == &c ? " graph" : " graph-replay");
  }
  CUDA_OK(cudaGraphExecDestroy(exec));
  CUDA_OK(cudaGraphDestroy(graph));
  CUDA_OK(cudaStreamDestroy(stream));
}

const std::vector<Seq> kMixed = {{17, 17},   {54, 120}, {97, 97}, {1, 1},
                                 {130, 130}, {1, 45},   {70, 201}};

// ---------------------------------------------------------------------------------------------
TEST(PrefillAttentionGpu, DenseMixedBatchDtypesHeadDimsPageSizes) {
  std::mt19937_64 rng(Seed() + 101);
  const int groups[] = {1, 3, 4, 8};
  int idx = 0;
  for (DType t : kDTypes) {
    for (int hd : {64, 128}) {
      for (int ps : {1, 8, 16}) {
        const int G = groups[idx++ % 4];
        PrefillCase c{.name = "dense",
                      .dtype = t,
                      .head_dim = hd,
                      .page_size = ps,
                      .num_q_heads = 2 * G,
                      .num_kv_heads = 2,
                      .seqs = kMixed,
                      .q_extra = (idx % 2) * 2 * 2 * hd};
        RunCase(c, rng);
      }
    }
  }
}

TEST(PrefillAttentionGpu, GqaGroups) {
  std::mt19937_64 rng(Seed() + 102);
  for (int G : {1, 3, 4, 8}) {
    PrefillCase c{.name = "gqa",
                  .head_dim = 128,
                  .page_size = 16,
                  .num_q_heads = 3 * G,
                  .num_kv_heads = 3,
                  .seqs = {{33, 33}, {100, 150}}};
    RunCase(c, rng);
  }
}

TEST(PrefillAttentionGpu, SlidingWindow) {
  std::mt19937_64 rng(Seed() + 103);
  for (DType t : kDTypes) {
    for (int hd : {64, 128}) {
      PrefillCase c{.name = "window",
                    .dtype = t,
                    .head_dim = hd,
                    .page_size = 8,
                    .num_q_heads = 8,
                    .num_kv_heads = 2,
                    .seqs = {{97, 97}, {40, 150}, {130, 300}, {1, 77}},
                    .window = 32,
                    .release_pages = true};
      RunCase(c, rng);
    }
  }
  PrefillCase wide{.name = "window-wide",
                   .page_size = 16,
                   .num_q_heads = 4,
                   .num_kv_heads = 1,
                   .seqs = {{200, 260}},
                   .window = 100};
  RunCase(wide, rng);
}

TEST(PrefillAttentionGpu, SinksAndWindowLongSequence) {
  std::mt19937_64 rng(Seed() + 104);
  for (DType t : kDTypes) {
    for (int hd : {64, 128}) {
      for (int ps : {1, 16}) {
        PrefillCase c{.name = "sinks",
                      .dtype = t,
                      .head_dim = hd,
                      .page_size = ps,
                      .num_q_heads = 8,
                      .num_kv_heads = 2,
                      .seqs = {{100, 700}, {150, 150}, {33, 500}, {3, 3}},
                      .window = 48,
                      .sinks = 4,
                      .release_pages = true};
        RunCase(c, rng);
      }
    }
  }
  // Per-sequence windows and sinks from device arrays, one sequence dense.
  PrefillCase per{.name = "per-seq",
                  .page_size = 8,
                  .num_q_heads = 12,
                  .num_kv_heads = 4,
                  .seqs = {{80, 400, 64, 1}, {90, 300, 0, 0}, {64, 640, 100, 16}, {20, 20, 8, 8}},
                  .per_seq_arrays = true,
                  .release_pages = true};
  RunCase(per, rng);
}

TEST(PrefillAttentionGpu, LargeSequence) {
  std::mt19937_64 rng(Seed() + 105);
  PrefillCase c{.name = "large",
                .head_dim = 128,
                .page_size = 16,
                .num_q_heads = 8,
                .num_kv_heads = 2,
                .seqs = {{1000, 1000}}};
  RunCase(c, rng);
  PrefillCase chunk{.name = "large-chunk",
                    .dtype = DType::kFP16,
                    .head_dim = 128,
                    .page_size = 16,
                    .num_q_heads = 4,
                    .num_kv_heads = 1,
                    .seqs = {{300, 1000}, {257, 257}}};
  RunCase(chunk, rng);
}

// Head dim 128 runs the Hopper wgmma kernel on sm_90 and the mma.sync kernel elsewhere or when
// LONGVIEW_PREFILL_MMA_SYNC=1: both, on sinks that overlap the chunk's window (lo < sinks),
// sinks below it, chunks not aligned to the 128-row tiles and a dense batch.
TEST(PrefillAttentionGpu, HeadDim128BothKernels) {
  std::mt19937_64 rng(Seed() + 108);
  for (const char* force : {"0", "1"}) {
    ASSERT_EQ(setenv("LONGVIEW_PREFILL_MMA_SYNC", force, 1), 0);
    std::printf("LONGVIEW_PREFILL_MMA_SYNC=%s\n", force);
    PrefillCase c{.name = "hd128-both",
                  .head_dim = 128,
                  .page_size = 16,
                  .num_q_heads = 8,
                  .num_kv_heads = 2,
                  .seqs = {{20, 200, 100, 90}, {130, 900, 300, 5}, {259, 259, 0, 0},
                           {77, 333, 0, 0}},
                  .per_seq_arrays = true,
                  .release_pages = true};
    RunCase(c, rng);
  }
  ASSERT_EQ(unsetenv("LONGVIEW_PREFILL_MMA_SYNC"), 0);
}

TEST(PrefillAttentionGpu, GraphCaptureReplayWithNewLengths) {
  std::mt19937_64 rng(Seed() + 106);
  PrefillCase a{.name = "graph",
                .page_size = 8,
                .num_q_heads = 8,
                .num_kv_heads = 2,
                .seqs = {{40, 40}, {97, 200}, {5, 5, 16, 2}},
                .per_seq_arrays = true};
  PrefillCase b = a;
  b.seqs = {{64, 64, 0, 0}, {17, 150, 32, 4}, {60, 130, 0, 0}};  // same bounds, other lengths
  RunCase(a, rng, &b);
}

TEST(PrefillAttentionGpu, PlanRejectsUnsupportedShapes) {
  const PrefillAttentionShape good{.dtype = DType::kBF16,
                                   .head_dim = 128,
                                   .num_q_heads = 8,
                                   .num_kv_heads = 2,
                                   .batch_size = 2,
                                   .page_size = 16,
                                   .max_total_q = 100,
                                   .max_total_kv = 200,
                                   .rope_hi_rows = 1};
  PrefillAttentionPlan plan;
  ASSERT_EQ(PlanPrefillAttention(good, &plan), cudaSuccess);
  auto rejects = [&](PrefillAttentionShape s, const char* what) {
    PrefillAttentionPlan p;
    const cudaError_t e = PlanPrefillAttention(s, &p);
    std::printf("[prefill_attn] plan rejects %s: %s\n", what,
                e == cudaErrorInvalidValue ? "PASS" : "FAIL");
    EXPECT_EQ(e, cudaErrorInvalidValue) << what;
  };
  PrefillAttentionShape s = good;
  s.head_dim = 96;
  rejects(s, "head_dim 96");
  s = good, s.window = 8, s.sinks = 9;
  rejects(s, "sinks > window");
  s = good, s.sinks = 2;
  rejects(s, "sinks without window");
  s = good, s.num_q_heads = 7;
  rejects(s, "heads not grouping");
  s = good, s.batch_size = 0;
  rejects(s, "batch 0");
  s = good, s.max_total_q = 0;
  rejects(s, "max_total_q 0");
  s = good, s.window = -1;
  rejects(s, "negative window");
  // Run rejects a q row stride smaller than a row or not a multiple of 8.
  PrefillAttentionArgs a{.q = reinterpret_cast<void*>(256),
                         .q_row_stride = 8 * 128 + 4,
                         .out = reinterpret_cast<void*>(256),
                         .pages = reinterpret_cast<void*>(256),
                         .page_stride = 4096,
                         .block_tables = reinterpret_cast<int32_t*>(256),
                         .block_table_stride = 4,
                         .q_start = reinterpret_cast<int32_t*>(256),
                         .kv_lens = reinterpret_cast<int32_t*>(256),
                         .rope_lo = reinterpret_cast<float*>(256),
                         .rope_hi = reinterpret_cast<float*>(256),
                         .scale = 0.1f};
  EXPECT_EQ(
      RunPrefillAttention(plan, a, reinterpret_cast<void*>(256), plan.workspace_bytes, nullptr),
      cudaErrorInvalidValue);
  a.q_row_stride = 8 * 128 - 8;
  EXPECT_EQ(
      RunPrefillAttention(plan, a, reinterpret_cast<void*>(256), plan.workspace_bytes, nullptr),
      cudaErrorInvalidValue);
}

}  // namespace
}  // namespace longview::cuda
