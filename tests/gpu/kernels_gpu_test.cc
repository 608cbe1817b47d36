// GPU tests of kernels/cuda against double-precision CPU references (STYLE: Kernels).
//
// Not registered with ctest (CI has no GPU): run build-cuda/tests/gpu_kernel_tests on a GPU
// machine. Random inputs from a logged seed (LV_TEST_SEED=<n> to repeat one), odd sizes, page
// sizes 1/8/16, both dtypes and both head dims; outputs are poisoned with NaN before every run so
// an unwritten element fails, and NaN never passes. Each case prints one summary line.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/gpu/gpu_test_util.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/activation/silu_mul.h"
#include "kernels/cuda/decode_attention/decode_attention.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/kv_append/paged_kv_append.h"
#include "kernels/cuda/norm/rmsnorm.h"
#include "kernels/cuda/status.h"

namespace longview::cuda {
namespace {

// ---------------------------------------------------------------------------------------------
TEST(RmsNormGpu, FusedAddMatchesDouble) {
  std::mt19937_64 rng(Seed() + 1);
  const struct {
    int64_t rows, hidden;
  } sizes[] = {{1, 17}, {3, 54}, {17, 97}, {5, 4096}, {2, 5128}, {1, 8}};
  for (DType t : kDTypes) {
    const Tolerance tol = TolFor(t);
    for (auto [rows, hidden] : sizes) {
      for (bool with_x : {true, false}) {
        const size_t n = rows * hidden;
        auto x = RandomBits(n, t, rng, 1.0);
        auto res = RandomBits(n, t, rng, 2.0);
        auto w = RandomBits(hidden, t, rng, 0.2, 1.0);
        DeviceBuffer dx(n * 2), dres(n * 2), dw(hidden * 2), dout(n * 2);
        ASSERT_TRUE(dx.ok() && dres.ok() && dw.ok() && dout.ok());
        CUDA_OK(Upload(dx, x));
        CUDA_OK(Upload(dres, res));
        CUDA_OK(Upload(dw, w));
        CUDA_OK(cudaMemset(dout.get(), 0xFF, n * 2));  // poison
        RmsNormArgs a{.dtype = t, .num_rows = rows, .hidden = hidden, .eps = 1e-5f,
                      .x = with_x ? dx.get() : nullptr, .residual = dres.get(),
                      .weight = dw.get(), .out = dout.get()};
        CUDA_OK(FusedAddRmsNorm(a, nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<uint16_t> gres(n), gout(n);
        CUDA_OK(Download(gres, dres));
        CUDA_OK(Download(gout, dout));
        // The residual is exactly round(res + x) (float sum, one rounding), as the kernel defines.
        std::vector<uint16_t> want_res(n);
        int64_t res_mismatch = 0;
        for (size_t i = 0; i < n; ++i) {
          want_res[i] = with_x ? ToBits(FromBits(res[i], t) + FromBits(x[i], t), t) : res[i];
          res_mismatch += gres[i] != want_res[i];
        }
        std::vector<double> ref(n);
        for (int64_t r = 0; r < rows; ++r) {
          double ss = 0;
          for (int64_t i = 0; i < hidden; ++i) {
            const double v = FromBits(want_res[r * hidden + i], t);
            ss += v * v;
          }
          const double inv = 1.0 / std::sqrt(ss / hidden + 1e-5);
          for (int64_t i = 0; i < hidden; ++i) {
            ref[r * hidden + i] = FromBits(want_res[r * hidden + i], t) * inv * FromBits(w[i], t);
          }
        }
        const Comparison c = Compare(gout, t, ref, tol);
        std::printf("[rmsnorm] %s rows=%lld hidden=%lld add=%d residual_mismatch=%lld %s\n",
                    DTypeName(t), static_cast<long long>(rows), static_cast<long long>(hidden),
                    with_x, static_cast<long long>(res_mismatch), Verdict(c, tol).c_str());
        EXPECT_EQ(res_mismatch, 0);
        EXPECT_TRUE(c.Pass(tol)) << "first bad " << c.first_bad;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
TEST(SiluMulGpu, MatchesDouble) {
  std::mt19937_64 rng(Seed() + 2);
  const struct {
    int64_t rows, n;
    bool fused;  // gate and up are halves of one [rows][2n] tensor
  } sizes[] = {{1, 17, false}, {3, 54, true}, {7, 97, true}, {2, 14336, true}, {4, 1024, false}};
  for (DType t : kDTypes) {
    const Tolerance tol = TolFor(t);
    for (auto [rows, n, fused] : sizes) {
      const size_t nin = rows * n * 2;
      auto in = RandomBits(nin, t, rng, 2.0);
      DeviceBuffer din(nin * 2), dout(rows * n * 2);
      ASSERT_TRUE(din.ok() && dout.ok());
      CUDA_OK(Upload(din, in));
      CUDA_OK(cudaMemset(dout.get(), 0xFF, rows * n * 2));
      const uint16_t* base = din.as<uint16_t>();
      SiluMulArgs a{.dtype = t, .num_rows = rows, .n = n, .gate = base,
                    .up = fused ? base + n : base + rows * n, .out = dout.get(),
                    .gate_stride = fused ? 2 * n : n, .up_stride = fused ? 2 * n : n,
                    .out_stride = n};
      CUDA_OK(SiluMul(a, nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      std::vector<uint16_t> gout(rows * n);
      CUDA_OK(Download(gout, dout));
      std::vector<double> ref(rows * n);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = 0; i < n; ++i) {
          const size_t gi = fused ? r * 2 * n + i : r * n + i;
          const size_t ui = fused ? r * 2 * n + n + i : rows * n + r * n + i;
          const double g = FromBits(in[gi], t), u = FromBits(in[ui], t);
          ref[r * n + i] = g / (1 + std::exp(-g)) * u;
        }
      }
      const Comparison c = Compare(gout, t, ref, tol);
      std::printf("[silu_mul] %s rows=%lld n=%lld fused=%d %s\n", DTypeName(t),
                  static_cast<long long>(rows), static_cast<long long>(n), fused,
                  Verdict(c, tol).c_str());
      EXPECT_TRUE(c.Pass(tol)) << "first bad " << c.first_bad;
    }
  }
}

// ---------------------------------------------------------------------------------------------
TEST(PagedKvAppendGpu, WritesExactlyTheMappedSlots) {
  std::mt19937_64 rng(Seed() + 3);
  for (DType t : kDTypes) {
    for (int head_dim : {64, 128}) {
      for (int page_size : {1, 8, 16}) {
        for (int num_tokens : {17, 54, 97}) {
          const int num_kv_heads = num_tokens == 54 ? 3 : 2;
          const int num_layers = 2, layer = 1;
          const int64_t row = static_cast<int64_t>(num_kv_heads) * head_dim;
          const int64_t kv_stride = page_size * row;
          const int64_t page_elems = num_layers * 2 * kv_stride;
          const int64_t num_slots = ((num_tokens * 3 / 2) / page_size + 2) * page_size;
          const int64_t num_pages = num_slots / page_size;
          std::vector<int64_t> slots(num_slots);
          std::iota(slots.begin(), slots.end(), 0);
          std::shuffle(slots.begin(), slots.end(), rng);
          std::vector<int64_t> mapping(slots.begin(), slots.begin() + num_tokens);
          for (int i = 0; i < num_tokens; i += 7) mapping[i] = -1;  // padding tokens
          auto k = RandomBits(num_tokens * row, t, rng, 1.0);
          auto v = RandomBits(num_tokens * row, t, rng, 1.0);
          std::vector<uint16_t> pages(num_pages * page_elems, kPoison);
          DeviceBuffer dk(k.size() * 2), dv(v.size() * 2), dmap(mapping.size() * 8),
              dpages(pages.size() * 2);
          ASSERT_TRUE(dk.ok() && dv.ok() && dmap.ok() && dpages.ok());
          CUDA_OK(Upload(dk, k));
          CUDA_OK(Upload(dv, v));
          CUDA_OK(Upload(dmap, mapping));
          CUDA_OK(Upload(dpages, pages));
          const int64_t k_offset = layer * 2 * kv_stride, v_offset = k_offset + kv_stride;
          KvAppendArgs a{.dtype = t, .num_tokens = num_tokens, .num_kv_heads = num_kv_heads,
                         .head_dim = head_dim, .page_size = page_size, .k = dk.get(),
                         .v = dv.get(), .slot_mapping = dmap.as<int64_t>(),
                         .pages = dpages.get(), .page_stride = page_elems,
                         .k_offset = k_offset, .v_offset = v_offset};
          CUDA_OK(PagedKvAppend(a, nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          std::vector<uint16_t> got(pages.size());
          CUDA_OK(Download(got, dpages));
          std::vector<uint16_t> want = pages;
          for (int tok = 0; tok < num_tokens; ++tok) {
            if (mapping[tok] < 0) continue;
            const int64_t base = (mapping[tok] / page_size) * page_elems +
                                 (mapping[tok] % page_size) * row;
            for (int64_t e = 0; e < row; ++e) {
              want[base + k_offset + e] = k[tok * row + e];
              want[base + v_offset + e] = v[tok * row + e];
            }
          }
          int64_t mismatches = 0;
          for (size_t i = 0; i < want.size(); ++i) mismatches += want[i] != got[i];
          std::printf("[kv_append] %s hd=%d ps=%d kv_heads=%d tokens=%d mismatches=%lld %s\n",
                      DTypeName(t), head_dim, page_size, num_kv_heads, num_tokens,
                      static_cast<long long>(mismatches), mismatches == 0 ? "PASS" : "FAIL");
          EXPECT_EQ(mismatches, 0);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decode attention.

struct AttnCase {
  DType dtype = DType::kBF16;
  int head_dim = 128;
  int page_size = 16;
  int num_q_heads = 8;
  int num_kv_heads = 2;
  std::vector<int> lens;
  std::vector<int> pos_start;  // empty = all 0 (and pos_start == nullptr)
  int window = 0;
  int partition_tokens = 0;
  int num_sms = 132;
  double q_scale = 1.0;
  bool use_graph = false;
  int max_kv_len = 0;  // 0 = max(lens)
};

struct AttnResult {
  Comparison cmp;
  Comparison naive_cmp;  // the reference with float32 angles vs the exact one
  int num_partitions = 0;
  int partition_tokens = 0;
  std::vector<uint16_t> out;
  std::vector<double> ref;
};

// Double reference; naive_angles forms angles as float(pos) * inv_freq in float32 (the error
// the exact rotation avoids).
std::vector<double> ReferenceAttention(const AttnCase& c, const std::vector<uint16_t>& q,
                                       const std::vector<uint16_t>& pages,
                                       const std::vector<int32_t>& block_tables, int bt_stride,
                                       int64_t page_elems, int64_t k_offset, int64_t v_offset,
                                       const std::vector<float>& inv_freq, bool naive_angles) {
  const int D = c.head_dim, half = D / 2, G = c.num_q_heads / c.num_kv_heads;
  const int B = static_cast<int>(c.lens.size());
  const int64_t row = static_cast<int64_t>(c.num_kv_heads) * D;
  std::vector<double> out(static_cast<size_t>(B) * c.num_q_heads * D, 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (int b = 0; b < B; ++b) {
    const int len = c.lens[b];
    const int64_t pos0 = c.pos_start.empty() ? 0 : c.pos_start[b];
    const int begin = c.window > 0 ? std::max(0, len - c.window) : 0;
    if (len <= 0) continue;
    // Rotated keys of every KV head, once per sequence.
    std::vector<double> keys(static_cast<size_t>(len - begin) * row), vals(keys.size());
    for (int j = begin; j < len; ++j) {
      const int64_t base = static_cast<int64_t>(block_tables[b * bt_stride + j / c.page_size]) *
                               page_elems + (j % c.page_size) * row;
      const int64_t pos = pos0 + j;
      for (int h = 0; h < c.num_kv_heads; ++h) {
        double* kd = &keys[(static_cast<size_t>(j - begin) * c.num_kv_heads + h) * D];
        double* vd = &vals[(static_cast<size_t>(j - begin) * c.num_kv_heads + h) * D];
        for (int d = 0; d < D; ++d) {
          vd[d] = FromBits(pages[base + v_offset + h * D + d], c.dtype);
        }
        for (int i = 0; i < half; ++i) {
          const double angle =
              naive_angles ? static_cast<double>(static_cast<float>(pos) * inv_freq[i])
                           : static_cast<double>(pos) * static_cast<double>(inv_freq[i]);
          const double x1 = FromBits(pages[base + k_offset + h * D + i], c.dtype);
          const double x2 = FromBits(pages[base + k_offset + h * D + half + i], c.dtype);
          kd[i] = x1 * std::cos(angle) - x2 * std::sin(angle);
          kd[half + i] = x2 * std::cos(angle) + x1 * std::sin(angle);
        }
      }
    }
    for (int hq = 0; hq < c.num_q_heads; ++hq) {
      const int h = hq / G;
      const uint16_t* qh = &q[(static_cast<size_t>(b) * c.num_q_heads + hq) * D];
      std::vector<double> s(len - begin);
      double mx = -INFINITY;
      for (int j = begin; j < len; ++j) {
        const double* kd = &keys[(static_cast<size_t>(j - begin) * c.num_kv_heads + h) * D];
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += FromBits(qh[d], c.dtype) * kd[d];
        s[j - begin] = dot * scale;
        mx = std::max(mx, s[j - begin]);
      }
      double sum = 0;
      for (auto& v : s) sum += (v = std::exp(v - mx));
      double* o = &out[(static_cast<size_t>(b) * c.num_q_heads + hq) * D];
      for (int j = begin; j < len; ++j) {
        const double* vd = &vals[(static_cast<size_t>(j - begin) * c.num_kv_heads + h) * D];
        for (int d = 0; d < D; ++d) o[d] += s[j - begin] / sum * vd[d];
      }
    }
  }
  return out;
}

void RunAttention(const AttnCase& c, std::mt19937_64& rng, AttnResult* res,
                  bool check_naive = false) {
  const int D = c.head_dim;
  const int B = static_cast<int>(c.lens.size());
  const int num_layers = 2, layer = 1;
  const int64_t row = static_cast<int64_t>(c.num_kv_heads) * D;
  const int64_t kv_stride = c.page_size * row;
  const int64_t page_elems = num_layers * 2 * kv_stride;
  const int64_t k_offset = layer * 2 * kv_stride, v_offset = k_offset + kv_stride;
  int max_blocks = 1, total_blocks = 0;
  for (int len : c.lens) {
    const int nb = (len + c.page_size - 1) / c.page_size;
    max_blocks = std::max(max_blocks, nb);
    total_blocks += nb;
  }
  const int bt_stride = max_blocks + 2;
  // Page 0 stays all-NaN and fills the unused block-table entries: any stray read shows as NaN.
  const int num_pages = total_blocks + 4;
  std::vector<int32_t> ids(num_pages - 1);
  std::iota(ids.begin(), ids.end(), 1);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> block_tables(static_cast<size_t>(B) * bt_stride, 0);
  std::vector<uint16_t> pages(static_cast<size_t>(num_pages) * page_elems, kPoison);
  std::normal_distribution<float> normal;
  size_t next = 0;
  for (int b = 0; b < B; ++b) {
    const int nb = (c.lens[b] + c.page_size - 1) / c.page_size;
    for (int blk = 0; blk < nb; ++blk) block_tables[b * bt_stride + blk] = ids[next++];
    for (int j = 0; j < c.lens[b]; ++j) {  // only valid tokens get values; the rest stay NaN
      const int64_t base =
          static_cast<int64_t>(block_tables[b * bt_stride + j / c.page_size]) * page_elems +
          (j % c.page_size) * row;
      for (int64_t e = 0; e < row; ++e) {
        pages[base + k_offset + e] = ToBits(normal(rng), c.dtype);
        pages[base + v_offset + e] = ToBits(normal(rng), c.dtype);
        pages[base + e] = ToBits(normal(rng), c.dtype);  // layer 0's K: present, not read
      }
    }
  }
  std::vector<uint16_t> q(static_cast<size_t>(B) * c.num_q_heads * D);
  for (auto& v : q) v = ToBits(static_cast<float>(c.q_scale * normal(rng)), c.dtype);

  cpu::RopeParams rp{.head_dim = D, .theta = 10000.0};
  const std::vector<float> inv_freq = cpu::InvFrequencies(rp);
  int64_t max_pos = 0;
  for (int b = 0; b < B; ++b) {
    const int64_t p0 = c.pos_start.empty() ? 0 : c.pos_start[b];
    max_pos = std::max<int64_t>(max_pos, p0 + std::max(c.lens[b], 1) - 1);
  }
  const int max_len = c.max_kv_len > 0 ? c.max_kv_len
                                       : std::max(1, *std::max_element(c.lens.begin(), c.lens.end()));
  max_pos = std::max<int64_t>(max_pos, max_len - 1);
  const RopeTablesHost tables = BuildRopeTables(inv_freq, max_pos);

  DecodeAttentionShape shape{.dtype = c.dtype, .head_dim = D, .num_q_heads = c.num_q_heads,
                             .num_kv_heads = c.num_kv_heads, .batch_size = B,
                             .page_size = c.page_size, .max_kv_len = max_len,
                             .max_position = max_pos, .window = c.window,
                             .rope_hi_rows = tables.num_hi_rows,
                             .partition_tokens = c.partition_tokens, .num_sms = c.num_sms};
  DecodeAttentionPlan plan;
  CUDA_OK(PlanDecodeAttention(shape, &plan));
  res->num_partitions = plan.num_partitions;
  res->partition_tokens = plan.partition_tokens;

  std::vector<int32_t> lens(c.lens.begin(), c.lens.end());
  std::vector<int32_t> starts(c.pos_start.begin(), c.pos_start.end());
  DeviceBuffer dq(q.size() * 2), dout(q.size() * 2), dpages(pages.size() * 2),
      dbt(block_tables.size() * 4), dlens(lens.size() * 4), dstarts(std::max<size_t>(4, starts.size() * 4)),
      dlo(tables.lo.size() * 4), dhi(tables.hi.size() * 4), dws(plan.workspace_bytes);
  ASSERT_TRUE(dq.ok() && dout.ok() && dpages.ok() && dbt.ok() && dlens.ok() && dstarts.ok() &&
              dlo.ok() && dhi.ok() && dws.ok());
  CUDA_OK(Upload(dq, q));
  CUDA_OK(Upload(dpages, pages));
  CUDA_OK(Upload(dbt, block_tables));
  CUDA_OK(Upload(dlens, lens));
  if (!starts.empty()) CUDA_OK(Upload(dstarts, starts));
  CUDA_OK(Upload(dlo, tables.lo));
  CUDA_OK(Upload(dhi, tables.hi));
  if (plan.workspace_bytes > 0) CUDA_OK(cudaMemset(dws.get(), 0xFF, plan.workspace_bytes));
  CUDA_OK(cudaMemset(dout.get(), 0xFF, q.size() * 2));

  DecodeAttentionArgs args{.q = dq.get(), .out = dout.get(), .pages = dpages.get(),
                           .page_stride = page_elems, .k_offset = k_offset, .v_offset = v_offset,
                           .block_tables = dbt.as<int32_t>(), .block_table_stride = bt_stride,
                           .kv_lens = dlens.as<int32_t>(),
                           .pos_start = starts.empty() ? nullptr : dstarts.as<int32_t>(),
                           .rope_lo = dlo.as<float>(), .rope_hi = dhi.as<float>(),
                           .scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)))};
  if (c.use_graph) {
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const cudaError_t run_err =
        RunDecodeAttention(plan, args, dws.get(), plan.workspace_bytes, stream);
    CUDA_OK(cudaStreamEndCapture(stream, &graph));
    CUDA_OK(run_err);
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    for (int rep = 0; rep < 3; ++rep) {
      CUDA_OK(cudaMemsetAsync(dout.get(), 0xFF, q.size() * 2, stream));
      CUDA_OK(cudaGraphLaunch(exec, stream));
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(cudaGraphExecDestroy(exec));
    CUDA_OK(cudaGraphDestroy(graph));
    CUDA_OK(cudaStreamDestroy(stream));
  } else {
    CUDA_OK(RunDecodeAttention(plan, args, dws.get(), plan.workspace_bytes, nullptr));
  }
  CUDA_OK(cudaDeviceSynchronize());
  res->out.resize(q.size());
  CUDA_OK(Download(res->out, dout));
  res->ref = ReferenceAttention(c, q, pages, block_tables, bt_stride, page_elems, k_offset,
                                v_offset, inv_freq, /*naive_angles=*/false);
  res->cmp = Compare(res->out, c.dtype, res->ref, TolFor(c.dtype));
  if (check_naive) {
    const std::vector<double> naive = ReferenceAttention(
        c, q, pages, block_tables, bt_stride, page_elems, k_offset, v_offset, inv_freq, true);
    std::vector<uint16_t> naive_bits(naive.size());
    for (size_t i = 0; i < naive.size(); ++i) naive_bits[i] = ToBits(static_cast<float>(naive[i]), c.dtype);
    res->naive_cmp = Compare(naive_bits, c.dtype, res->ref, TolFor(c.dtype));
  }
}

std::string Describe(const AttnCase& c, const AttnResult& r) {
  std::string lens;
  for (size_t i = 0; i < c.lens.size(); ++i) {
    lens += (i ? "," : "") + std::to_string(c.lens[i]);
    if (!c.pos_start.empty() && c.pos_start[i] != 0) lens += "@" + std::to_string(c.pos_start[i]);
  }
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "%s hd=%d ps=%d hq=%d hkv=%d window=%d parts=%d x %d graph=%d lens=[%s]",
                DTypeName(c.dtype), c.head_dim, c.page_size, c.num_q_heads, c.num_kv_heads,
                c.window, r.num_partitions, r.partition_tokens, c.use_graph, lens.c_str());
  return buf;
}

TEST(DecodeAttentionGpu, SweepMatchesDouble) {
  std::mt19937_64 rng(Seed() + 4);
  const struct {
    int hq, hkv;
  } heads[] = {{8, 2}, {3, 3}, {12, 2}};
  for (DType t : kDTypes) {
    for (int head_dim : {64, 128}) {
      for (int page_size : {1, 8, 16}) {
        for (auto [hq, hkv] : heads) {
          for (int window : {0, 137}) {
            for (int partition_tokens : {0, 37}) {
              AttnCase c;
              c.dtype = t;
              c.head_dim = head_dim;
              c.page_size = page_size;
              c.num_q_heads = hq;
              c.num_kv_heads = hkv;
              c.lens = {1, 17, 54, 97, 0, 300, 1000};
              c.pos_start = {0, 5, 3000000, 0, 0, 1234567, 0};
              c.window = window;
              c.partition_tokens = partition_tokens;
              AttnResult r;
              RunAttention(c, rng, &r);
              if (HasFatalFailure()) return;
              std::printf("[decode_attention] %s %s\n", Describe(c, r).c_str(),
                          Verdict(r.cmp, TolFor(t)).c_str());
              EXPECT_TRUE(r.cmp.Pass(TolFor(t))) << Describe(c, r) << " first bad "
                                                 << r.cmp.first_bad;
            }
          }
        }
      }
    }
  }
}

// Larger groups (GQA 8, MQA-like 16) and a single-partition (direct write) plan.
TEST(DecodeAttentionGpu, GroupsAndDirectPath) {
  std::mt19937_64 rng(Seed() + 5);
  for (DType t : kDTypes) {
    for (int head_dim : {64, 128}) {
      for (auto [hq, hkv, part] : {std::tuple{16, 2, 0}, {16, 1, 0}, {8, 2, 4096}, {4, 4, 1}}) {
        AttnCase c;
        c.dtype = t;
        c.head_dim = head_dim;
        c.page_size = 16;
        c.num_q_heads = hq;
        c.num_kv_heads = hkv;
        c.lens = part == 1 ? std::vector<int>{17, 3, 54} : std::vector<int>{97, 2048, 1, 513};
        c.partition_tokens = part;
        AttnResult r;
        RunAttention(c, rng, &r);
        if (HasFatalFailure()) return;
        std::printf("[decode_attention] %s %s\n", Describe(c, r).c_str(),
                    Verdict(r.cmp, TolFor(t)).c_str());
        EXPECT_TRUE(r.cmp.Pass(TolFor(t))) << Describe(c, r);
        if (part == 4096) {
          EXPECT_EQ(r.num_partitions, 1);
        }
      }
    }
  }
}

// Page sizes that are not powers of two (the kernel's division path), partitions that cut pages
// and chunks at odd places, GQA groups that need several head chunks (6 = 4 + 2).
TEST(DecodeAttentionGpu, OddPageSizes) {
  std::mt19937_64 rng(Seed() + 9);
  for (DType t : kDTypes) {
    for (int head_dim : {64, 128}) {
      for (auto [page_size, hq, hkv, window, part] :
           {std::tuple{5, 8, 2, 0, 0}, {3, 12, 2, 137, 0}, {24, 8, 2, 0, 53}, {7, 6, 6, 0, 37}}) {
        AttnCase c;
        c.dtype = t;
        c.head_dim = head_dim;
        c.page_size = page_size;
        c.num_q_heads = hq;
        c.num_kv_heads = hkv;
        c.lens = {1, 33, 250, 0, 777};
        c.pos_start = {9, 0, 1025, 0, 4000000};
        c.window = window;
        c.partition_tokens = part;
        AttnResult r;
        RunAttention(c, rng, &r);
        if (HasFatalFailure()) return;
        std::printf("[decode_attention/odd_pages] %s %s\n", Describe(c, r).c_str(),
                    Verdict(r.cmp, TolFor(t)).c_str());
        EXPECT_TRUE(r.cmp.Pass(TolFor(t))) << Describe(c, r);
      }
    }
  }
}

// Positions up to 2^24: the exact rotation must beat float32 angles by a wide margin.
TEST(DecodeAttentionGpu, ExactRotationAtLargePositions) {
  std::mt19937_64 rng(Seed() + 6);
  for (DType t : kDTypes) {
    for (int head_dim : {64, 128}) {
      AttnCase c;
      c.dtype = t;
      c.head_dim = head_dim;
      c.page_size = 16;
      c.num_q_heads = 8;
      c.num_kv_heads = 2;
      c.lens = {500, 300, 129};
      c.pos_start = {3000000, 16776000, (1 << 24) - 129};  // last key at position 2^24 - 1
      c.q_scale = 4.0;  // sharper softmax: angle errors show
      AttnResult r;
      RunAttention(c, rng, &r, /*check_naive=*/true);
      if (HasFatalFailure()) return;
      std::printf("[decode_attention/rope] %s %s | float32-angle reference nmse=%.3g\n",
                  Describe(c, r).c_str(), Verdict(r.cmp, TolFor(t)).c_str(), r.naive_cmp.nmse);
      EXPECT_TRUE(r.cmp.Pass(TolFor(t))) << Describe(c, r);
      EXPECT_LT(r.cmp.nmse * 10, r.naive_cmp.nmse) << "test cannot tell exact from float angles";
    }
  }
}

TEST(DecodeAttentionGpu, CudaGraphReplay) {
  std::mt19937_64 rng(Seed() + 7);
  for (DType t : kDTypes) {
    for (int partition_tokens : {0, 4096}) {
      AttnCase c;
      c.dtype = t;
      c.head_dim = 128;
      c.page_size = 8;
      c.num_q_heads = 8;
      c.num_kv_heads = 2;
      c.lens = {97, 1000, 54};
      c.pos_start = {0, 70000, 3};
      c.window = partition_tokens ? 0 : 300;
      c.partition_tokens = partition_tokens;
      c.use_graph = true;
      AttnResult r;
      RunAttention(c, rng, &r);
      if (HasFatalFailure()) return;
      std::printf("[decode_attention] %s %s\n", Describe(c, r).c_str(),
                  Verdict(r.cmp, TolFor(t)).c_str());
      EXPECT_TRUE(r.cmp.Pass(TolFor(t))) << Describe(c, r);
    }
  }
}

// A sequence longer than the plan's bound gets NaN (never silently truncated); the others are
// unaffected.
TEST(DecodeAttentionGpu, SequenceBeyondPlanIsNaN) {
  std::mt19937_64 rng(Seed() + 8);
  for (int head_dim : {64, 128}) {
    for (int partition_tokens : {0, 32}) {
      AttnCase c;
      c.dtype = DType::kBF16;
      c.head_dim = head_dim;
      c.lens = {50, 300, 20};
      c.max_kv_len = 64;  // 300 exceeds every cover of 64 keys (tiles are 64 or 128 keys)
      c.partition_tokens = partition_tokens;
      AttnResult r;
      RunAttention(c, rng, &r);
      if (HasFatalFailure()) return;
      const int D = head_dim, H = c.num_q_heads;
      int64_t nan_count = 0, bad_others = 0;
      for (int b = 0; b < 3; ++b) {
        for (int i = 0; i < H * D; ++i) {
          const size_t idx = static_cast<size_t>(b) * H * D + i;
          const double g = FromBits(r.out[idx], c.dtype);
          if (b == 1) {
            nan_count += std::isnan(g);
          } else {
            const Tolerance tol = TolFor(c.dtype);
            bad_others += !(std::fabs(g - r.ref[idx]) <= tol.atol + tol.rtol * std::fabs(r.ref[idx]));
          }
        }
      }
      std::printf("[decode_attention/bounds] hd=%d parts=%d x %d nan=%lld/%d others_bad=%lld %s\n",
                  head_dim, r.num_partitions, r.partition_tokens, static_cast<long long>(nan_count),
                  H * D, static_cast<long long>(bad_others),
                  nan_count == H * D && bad_others == 0 ? "PASS" : "FAIL");
      EXPECT_EQ(nan_count, H * D);
      EXPECT_EQ(bad_others, 0);
    }
  }
}

TEST(DecodeAttentionGpu, PlanRejectsUnsupportedShapes) {
  DecodeAttentionShape s{.dtype = DType::kBF16, .head_dim = 96, .num_q_heads = 8,
                         .num_kv_heads = 2, .batch_size = 1, .page_size = 16, .max_kv_len = 16,
                         .max_position = 15, .rope_hi_rows = 1};
  DecodeAttentionPlan plan;
  EXPECT_EQ(PlanDecodeAttention(s, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(CudaStatus(PlanDecodeAttention(s, &plan), "plan").code(),
            absl::StatusCode::kInvalidArgument);
  s.head_dim = 128;
  s.num_kv_heads = 3;  // 8 % 3 != 0
  EXPECT_EQ(PlanDecodeAttention(s, &plan), cudaErrorInvalidValue);
  s.num_kv_heads = 2;
  s.max_position = 1024;  // beyond one hi row of the tables
  EXPECT_EQ(PlanDecodeAttention(s, &plan), cudaErrorInvalidValue);
  s.max_position = 15;
  EXPECT_EQ(PlanDecodeAttention(s, &plan), cudaSuccess);
  std::printf("[decode_attention/plan] rejects head_dim 96, 8/3 heads, positions past the tables "
              "PASS\n");
}

}  // namespace
}  // namespace longview::cuda
