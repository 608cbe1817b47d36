// GPU tests of the runner's small ops (kernels/cuda/embedding, rope, kv_append strides, sampling)
// against exact or double-precision host references (STYLE: Kernels).
//
// Not registered with ctest (CI has no GPU): run build-cuda/tests/gpu_kernel_tests on a GPU
// machine, e.g.
// --gtest_filter='EmbeddingGpu.*:RotateRowsGpu.*:PagedKvAppendStridesGpu.*:SamplingGpu.*'. Random
// inputs from the logged seed (LV_TEST_SEED=<n> to repeat), odd sizes, both dtypes and head dims,
// NaN-poisoned outputs; each case prints one summary line ending PASS or FAIL.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/embedding/embedding.h"
#include "kernels/cuda/kv_append/paged_kv_append.h"
#include "kernels/cuda/rope/rope.h"
#include "kernels/cuda/sampling/sampling.h"
#include "tests/gpu/gpu_test_util.h"

namespace longview::cuda {
namespace {

// ---------------------------------------------------------------------------------------------
TEST(EmbeddingGpu, CopiesRowsExactlyAndBadIdsAreNaN) {
  std::mt19937_64 rng(Seed() + 101);
  const struct {
    int64_t tokens, vocab, hidden;
    int out_offset;  // elements; 1 forces the 2-byte path
  } cases[] = {{17, 54, 97, 0},    {54, 97, 17, 0}, {97, 1000, 4096, 0},
               {17, 300, 4096, 1}, {5, 7, 8, 0},    {1, 3, 54, 0}};
  for (DType t : kDTypes) {
    for (auto [tokens, vocab, hidden, out_offset] : cases) {
      auto table = RandomBits(vocab * hidden, t, rng, 1.0);
      std::vector<int32_t> ids(tokens);
      std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(vocab - 1));
      for (auto& id : ids) id = pick(rng);
      const int32_t bad[] = {-1, static_cast<int32_t>(vocab), std::numeric_limits<int32_t>::max(),
                             std::numeric_limits<int32_t>::min()};
      for (int i = 0; i < 4 && i * 5 + 3 < tokens; ++i) ids[i * 5 + 3] = bad[i];
      const size_t out_elems = tokens * hidden + out_offset;
      DeviceBuffer dtable(table.size() * 2), dids(ids.size() * 4), dout(out_elems * 2);
      ASSERT_TRUE(dtable.ok() && dids.ok() && dout.ok());
      CUDA_OK(Upload(dtable, table));
      CUDA_OK(Upload(dids, ids));
      CUDA_OK(cudaMemset(dout.get(), 0xAB, out_elems * 2));  // poison (not NaN: NaN is the answer)
      EmbeddingArgs a{.dtype = t,
                      .num_tokens = tokens,
                      .vocab_size = vocab,
                      .hidden = hidden,
                      .ids = dids.as<int32_t>(),
                      .table = dtable.get(),
                      .out = dout.as<uint16_t>() + out_offset};
      CUDA_OK(EmbeddingLookup(a, nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      std::vector<uint16_t> got(out_elems);
      CUDA_OK(Download(got, dout));
      int64_t mismatches = 0, bad_rows = 0;
      for (int64_t i = 0; i < tokens; ++i) {
        const bool valid = ids[i] >= 0 && ids[i] < vocab;
        bad_rows += !valid;
        for (int64_t e = 0; e < hidden; ++e) {
          const uint16_t g = got[out_offset + i * hidden + e];
          if (valid) {
            mismatches += g != table[ids[i] * hidden + e];
          } else {
            mismatches += !(g == 0xFFFF && std::isnan(FromBits(g, t)));
          }
        }
      }
      if (out_offset > 0) mismatches += got[0] != 0xABAB;  // nothing written before out
      std::printf(
          "[embedding] %s tokens=%lld vocab=%lld hidden=%lld offset=%d bad_ids=%lld "
          "mismatches=%lld %s\n",
          DTypeName(t), static_cast<long long>(tokens), static_cast<long long>(vocab),
          static_cast<long long>(hidden), out_offset, static_cast<long long>(bad_rows),
          static_cast<long long>(mismatches), mismatches == 0 ? "PASS" : "FAIL");
      EXPECT_EQ(mismatches, 0);
    }
  }
  EmbeddingArgs a{.dtype = DType::kBF16, .num_tokens = 1, .vocab_size = 0, .hidden = 8};
  EXPECT_EQ(EmbeddingLookup(a, nullptr), cudaErrorInvalidValue);
}

// ---------------------------------------------------------------------------------------------
// RoPE on strided rows: the q heads (or the k heads) inside fused [q | k | v] rows.
TEST(RotateRowsGpu, MatchesDoubleWithExactAngles) {
  std::mt19937_64 rng(Seed() + 102);
  constexpr int64_t kMaxPosition = (1 << 20) + 4000;
  for (DType t : kDTypes) {
    const Tolerance tol = TolFor(t);
    for (int head_dim : {64, 128}) {
      cpu::RopeParams rp{.head_dim = head_dim, .theta = 500000.0};
      const std::vector<float> inv_freq = cpu::InvFrequencies(rp);
      const RopeTablesHost tables = BuildRopeTables(inv_freq, kMaxPosition);
      DeviceBuffer dlo(tables.lo.size() * 4), dhi(tables.hi.size() * 4);
      ASSERT_TRUE(dlo.ok() && dhi.ok());
      CUDA_OK(Upload(dlo, tables.lo));
      CUDA_OK(Upload(dhi, tables.hi));
      const int64_t num_pos = static_cast<int64_t>(tables.num_hi_rows) * kRopeLoRows;
      for (int rows : {17, 54, 97}) {
        for (bool rotate_k : {false, true}) {
          const int num_q_heads = rows == 54 ? 6 : 4, num_kv_heads = rows == 97 ? 1 : 2;
          const int64_t width = static_cast<int64_t>(num_q_heads + 2 * num_kv_heads) * head_dim;
          const int64_t stride = width + (rows == 17 ? 8 : 0);  // padded rows too
          const int heads = rotate_k ? num_kv_heads : num_q_heads;
          const int64_t first = rotate_k ? static_cast<int64_t>(num_q_heads) * head_dim : 0;
          auto x = RandomBits(rows * stride, t, rng, 1.0);
          std::vector<int32_t> pos(rows);
          // Mostly large positions, where float32 angles are visibly off.
          std::uniform_int_distribution<int32_t> pick(1 << 19, 1 << 20);
          for (auto& p : pos) p = pick(rng);
          pos[0] = 0;
          pos[1] = 1023;
          pos[2] = 1024;
          pos[3] = static_cast<int32_t>(num_pos - 1);  // last covered position
          pos[5] = -1;                                 // outside the tables: NaN
          pos[7] = static_cast<int32_t>(num_pos);      // outside the tables: NaN
          DeviceBuffer dx(x.size() * 2), dpos(pos.size() * 4);
          ASSERT_TRUE(dx.ok() && dpos.ok());
          CUDA_OK(Upload(dx, x));
          CUDA_OK(Upload(dpos, pos));
          RotateRowsArgs a{.dtype = t,
                           .num_rows = rows,
                           .num_heads = heads,
                           .head_dim = head_dim,
                           .row_stride = stride,
                           .x = dx.as<uint16_t>() + first,
                           .positions = dpos.as<int32_t>(),
                           .rope_lo = dlo.as<float>(),
                           .rope_hi = dhi.as<float>(),
                           .rope_hi_rows = tables.num_hi_rows};
          CUDA_OK(RotateRows(a, nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          std::vector<uint16_t> got(x.size());
          CUDA_OK(Download(got, dx));
          // Reference over the rotated heads of valid rows; everything else must be untouched
          // (or NaN for the two rows outside the tables).
          std::vector<uint16_t> gpu;
          std::vector<double> ref, naive;
          int64_t untouched_bad = 0, nan_bad = 0;
          const int half = head_dim / 2;
          for (int r = 0; r < rows; ++r) {
            const bool valid = pos[r] >= 0 && pos[r] < num_pos;
            for (int64_t e = 0; e < stride; ++e) {
              const int64_t idx = r * stride + e;
              const bool rotated = e >= first && e < first + static_cast<int64_t>(heads) * head_dim;
              if (!rotated) {
                untouched_bad += got[idx] != x[idx];
              } else if (!valid) {
                nan_bad += !std::isnan(FromBits(got[idx], t));
              }
            }
            if (!valid) continue;
            for (int h = 0; h < heads; ++h) {
              const int64_t base = r * stride + first + static_cast<int64_t>(h) * head_dim;
              std::vector<double> out(head_dim), out_naive(head_dim);
              for (int i = 0; i < half; ++i) {
                const double x1 = FromBits(x[base + i], t), x2 = FromBits(x[base + half + i], t);
                const double angle = static_cast<double>(pos[r]) * inv_freq[i];
                const double angle_f =
                    static_cast<double>(static_cast<float>(pos[r]) * inv_freq[i]);
                out[i] = x1 * std::cos(angle) - x2 * std::sin(angle);
                out[half + i] = x2 * std::cos(angle) + x1 * std::sin(angle);
                out_naive[i] = x1 * std::cos(angle_f) - x2 * std::sin(angle_f);
                out_naive[half + i] = x2 * std::cos(angle_f) + x1 * std::sin(angle_f);
              }
              for (int e = 0; e < head_dim; ++e) {
                gpu.push_back(got[base + e]);
                ref.push_back(out[e]);
                naive.push_back(out_naive[e]);
              }
            }
          }
          const Comparison c = Compare(gpu, t, ref, tol);
          // How far a float32-angle rotation is from the exact one, as a sanity check that the
          // positions are large enough for the test to tell them apart.
          double err2 = 0, ref2 = 0;
          for (size_t i = 0; i < ref.size(); ++i) {
            err2 += (naive[i] - ref[i]) * (naive[i] - ref[i]);
            ref2 += ref[i] * ref[i];
          }
          const double naive_nmse = err2 / std::max(ref2, 1e-30);
          const bool pass = c.Pass(tol) && untouched_bad == 0 && nan_bad == 0;
          std::printf(
              "[rope] %s hd=%d rows=%d heads=%d stride=%lld %s untouched_bad=%lld "
              "nan_bad=%lld float-angle nmse=%.3g %s\n",
              DTypeName(t), head_dim, rows, heads, static_cast<long long>(stride),
              rotate_k ? "k" : "q", static_cast<long long>(untouched_bad),
              static_cast<long long>(nan_bad), naive_nmse,
              (Verdict(c, tol) + (pass ? "" : " FAIL")).c_str());
          EXPECT_TRUE(c.Pass(tol)) << "first bad " << c.first_bad;
          EXPECT_EQ(untouched_bad, 0);
          EXPECT_EQ(nan_bad, 0);
          if (t == DType::kFP16) {  // bf16's own rounding is as large as the float32-angle error
            EXPECT_LT(c.nmse * 10, naive_nmse) << "test cannot tell exact from float32 angles";
          }
        }
      }
    }
  }
  RotateRowsArgs a{.dtype = DType::kBF16, .num_rows = 1, .num_heads = 1, .head_dim = 96};
  EXPECT_EQ(RotateRows(a, nullptr), cudaErrorInvalidValue);
}

// ---------------------------------------------------------------------------------------------
// K and V read straight from fused [q | k | v] rows (k_row_stride / v_row_stride).
TEST(PagedKvAppendStridesGpu, ReadsKvFromFusedQkvRows) {
  std::mt19937_64 rng(Seed() + 103);
  for (DType t : kDTypes) {
    for (int head_dim : {64, 128}) {
      for (int page_size : {1, 16}) {
        for (int num_tokens : {17, 54, 97}) {
          const int num_q_heads = 4, num_kv_heads = num_tokens == 54 ? 1 : 2;
          const int64_t row = static_cast<int64_t>(num_kv_heads) * head_dim;
          const int64_t width = static_cast<int64_t>(num_q_heads) * head_dim + 2 * row;
          const int64_t stride = width + (num_tokens == 97 ? 16 : 0);
          const int64_t kv_stride = page_size * row;
          const int64_t page_elems = 2 * kv_stride;  // one layer
          const int64_t num_pages = num_tokens / page_size + 2;
          std::vector<int64_t> slots(num_pages * page_size);
          std::iota(slots.begin(), slots.end(), 0);
          std::shuffle(slots.begin(), slots.end(), rng);
          std::vector<int64_t> mapping(slots.begin(), slots.begin() + num_tokens);
          for (int i = 2; i < num_tokens; i += 11) mapping[i] = -1;
          auto qkv = RandomBits(num_tokens * stride, t, rng, 1.0);
          std::vector<uint16_t> pages(num_pages * page_elems, kPoison);
          DeviceBuffer dqkv(qkv.size() * 2), dmap(mapping.size() * 8), dpages(pages.size() * 2);
          ASSERT_TRUE(dqkv.ok() && dmap.ok() && dpages.ok());
          CUDA_OK(Upload(dqkv, qkv));
          CUDA_OK(Upload(dmap, mapping));
          CUDA_OK(Upload(dpages, pages));
          const int64_t k_col = static_cast<int64_t>(num_q_heads) * head_dim, v_col = k_col + row;
          KvAppendArgs a{.dtype = t,
                         .num_tokens = num_tokens,
                         .num_kv_heads = num_kv_heads,
                         .head_dim = head_dim,
                         .page_size = page_size,
                         .k = dqkv.as<uint16_t>() + k_col,
                         .v = dqkv.as<uint16_t>() + v_col,
                         .slot_mapping = dmap.as<int64_t>(),
                         .pages = dpages.get(),
                         .page_stride = page_elems,
                         .k_offset = 0,
                         .v_offset = kv_stride,
                         .k_row_stride = stride,
                         .v_row_stride = stride};
          CUDA_OK(PagedKvAppend(a, nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          std::vector<uint16_t> got(pages.size());
          CUDA_OK(Download(got, dpages));
          std::vector<uint16_t> want = pages;
          for (int tok = 0; tok < num_tokens; ++tok) {
            if (mapping[tok] < 0) continue;
            const int64_t base =
                (mapping[tok] / page_size) * page_elems + (mapping[tok] % page_size) * row;
            for (int64_t e = 0; e < row; ++e) {
              want[base + e] = qkv[tok * stride + k_col + e];
              want[base + kv_stride + e] = qkv[tok * stride + v_col + e];
            }
          }
          int64_t mismatches = 0;
          for (size_t i = 0; i < want.size(); ++i) mismatches += want[i] != got[i];
          std::printf(
              "[kv_append/strided] %s hd=%d ps=%d kv_heads=%d tokens=%d stride=%lld "
              "mismatches=%lld %s\n",
              DTypeName(t), head_dim, page_size, num_kv_heads, num_tokens,
              static_cast<long long>(stride), static_cast<long long>(mismatches),
              mismatches == 0 ? "PASS" : "FAIL");
          EXPECT_EQ(mismatches, 0);
        }
      }
    }
  }
  // A stride shorter than the row, or not a multiple of 8, is rejected.
  DeviceBuffer d(4096);
  KvAppendArgs a{.dtype = DType::kBF16,
                 .num_tokens = 1,
                 .num_kv_heads = 1,
                 .head_dim = 64,
                 .page_size = 1,
                 .k = d.get(),
                 .v = d.get(),
                 .slot_mapping = d.as<int64_t>(),
                 .pages = d.get(),
                 .page_stride = 128,
                 .k_offset = 0,
                 .v_offset = 64,
                 .k_row_stride = 32};
  EXPECT_EQ(PagedKvAppend(a, nullptr), cudaErrorInvalidValue);
  a.k_row_stride = 68;
  EXPECT_EQ(PagedKvAppend(a, nullptr), cudaErrorInvalidValue);
}

// ---------------------------------------------------------------------------------------------
// Sampling.

struct RowParams {
  float temperature = 1.f;
  int32_t top_k = 0;
  float top_p = 1.f;
  uint64_t seed = 0;
  uint64_t counter = 0;
};

struct SampleResult {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
};

// Runs RunSampling on host rows (rows x vocab, packed unless stride > vocab).
void RunGpuSampling(const std::vector<float>& logits, int vocab, int64_t stride,
                    const std::vector<RowParams>& params, SampleResult* out,
                    bool use_graph = false) {
  const int rows = static_cast<int>(params.size());
  std::vector<float> temp(rows), top_p(rows);
  std::vector<int32_t> top_k(rows);
  std::vector<uint64_t> seed(rows), counter(rows);
  for (int r = 0; r < rows; ++r) {
    temp[r] = params[r].temperature;
    top_k[r] = params[r].top_k;
    top_p[r] = params[r].top_p;
    seed[r] = params[r].seed;
    counter[r] = params[r].counter;
  }
  SamplingPlan plan;
  CUDA_OK(PlanSampling({.max_rows = rows, .vocab_size = vocab}, &plan));
  DeviceBuffer dlogits(logits.size() * 4), dtemp(rows * 4), dk(rows * 4), dp(rows * 4),
      dseed(rows * 8), dcounter(rows * 8), dtok(rows * 4), dlp(rows * 4), dws(plan.workspace_bytes);
  ASSERT_TRUE(dlogits.ok() && dtemp.ok() && dk.ok() && dp.ok() && dseed.ok() && dcounter.ok() &&
              dtok.ok() && dlp.ok() && dws.ok());
  CUDA_OK(Upload(dlogits, logits));
  CUDA_OK(Upload(dtemp, temp));
  CUDA_OK(Upload(dk, top_k));
  CUDA_OK(Upload(dp, top_p));
  CUDA_OK(Upload(dseed, seed));
  CUDA_OK(Upload(dcounter, counter));
  CUDA_OK(cudaMemset(dtok.get(), 0xFF, rows * 4));
  CUDA_OK(cudaMemset(dlp.get(), 0xFF, rows * 4));
  SamplingArgs a{.num_rows = rows,
                 .logits = dlogits.as<float>(),
                 .logits_stride = stride,
                 .temperature = dtemp.as<float>(),
                 .top_k = dk.as<int32_t>(),
                 .top_p = dp.as<float>(),
                 .seed = dseed.as<uint64_t>(),
                 .counter = dcounter.as<uint64_t>(),
                 .tokens = dtok.as<int32_t>(),
                 .logprobs = dlp.as<float>()};
  if (use_graph) {
    cudaStream_t stream;
    CUDA_OK(cudaStreamCreate(&stream));
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const cudaError_t run_err = RunSampling(plan, a, dws.get(), plan.workspace_bytes, stream);
    CUDA_OK(cudaStreamEndCapture(stream, &graph));
    CUDA_OK(run_err);
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    for (int rep = 0; rep < 3; ++rep) {
      CUDA_OK(cudaMemsetAsync(dtok.get(), 0xFF, rows * 4, stream));
      CUDA_OK(cudaGraphLaunch(exec, stream));
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    CUDA_OK(cudaGraphExecDestroy(exec));
    CUDA_OK(cudaGraphDestroy(graph));
    CUDA_OK(cudaStreamDestroy(stream));
  } else {
    CUDA_OK(RunSampling(plan, a, dws.get(), plan.workspace_bytes, nullptr));
  }
  CUDA_OK(cudaDeviceSynchronize());
  out->tokens.assign(rows, 0);
  out->logprobs.assign(rows, 0.f);
  CUDA_OK(Download(out->tokens, dtok));
  CUDA_OK(Download(out->logprobs, dlp));
}

double SanitizeD(float l) {
  return std::isnan(l) ? -std::numeric_limits<double>::infinity() : static_cast<double>(l);
}

// Lowest id of the largest logit (NaN = -inf); 0 when all are -inf.
int32_t HostArgmax(const float* l, int vocab) {
  int32_t best = 0;
  for (int i = 1; i < vocab; ++i) {
    if (SanitizeD(l[i]) > SanitizeD(l[best])) best = i;
  }
  return best;
}

// log-softmax of the raw row at `token`, in double.
double HostLogprob(const float* l, int vocab, int32_t token) {
  double m = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < vocab; ++i) m = std::max(m, SanitizeD(l[i]));
  if (m == -std::numeric_limits<double>::infinity()) return m;
  double s = 0;
  for (int i = 0; i < vocab; ++i) s += std::exp(SanitizeD(l[i]) - m);
  return SanitizeD(l[token]) - m - std::log(s);
}

// The kept set of engine/sampler.cc in double, with the top-p target scaled by (1 - slack) for
// `strict` and (1 + slack) for `loose` (strict within loose), so that a test never depends on
// float rounding at a knife edge. `prob` = the exact renormalised distribution over `strict`.
struct KeptSets {
  std::vector<char> strict, loose;
  std::vector<double> prob;
  int num_strict = 0, num_loose = 0;
};
KeptSets HostKept(const float* l, int vocab, const RowParams& p, double slack = 1e-5) {
  KeptSets k;
  k.strict.assign(vocab, 0);
  k.loose.assign(vocab, 0);
  k.prob.assign(vocab, 0.0);
  double m = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < vocab; ++i) m = std::max(m, SanitizeD(l[i]));
  if (p.temperature <= 0 || p.top_k == 1 || m == -std::numeric_limits<double>::infinity()) {
    const int32_t a = HostArgmax(l, vocab);
    k.strict[a] = k.loose[a] = 1;
    k.prob[a] = 1;
    k.num_strict = k.num_loose = 1;
    return k;
  }
  std::vector<double> w(vocab);
  for (int i = 0; i < vocab; ++i) {
    const double x = SanitizeD(l[i]);
    w[i] = x == m ? 1.0 : std::exp((x - m) / static_cast<double>(p.temperature));
  }
  std::vector<int32_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return w[a] != w[b] ? w[a] > w[b] : a < b; });
  int n = vocab;
  if (p.top_k > 0 && p.top_k < vocab) n = p.top_k;
  int n_strict = n, n_loose = n;
  if (p.top_p < 1.f) {
    double total = 0;
    for (int i = 0; i < n; ++i) total += w[order[i]];
    const auto keep = [&](double target) {
      double cum = 0;
      int kept = 0;
      while (kept < n) {
        cum += w[order[kept++]];
        if (cum >= target) break;
      }
      return kept;
    };
    const double target = static_cast<double>(p.top_p) * total;
    n_strict = keep(target * (1 - slack));
    n_loose = keep(target * (1 + slack));
  }
  double total = 0;
  for (int i = 0; i < n_strict; ++i) total += w[order[i]];
  for (int i = 0; i < n_loose; ++i) k.loose[order[i]] = 1;
  for (int i = 0; i < n_strict; ++i) {
    k.strict[order[i]] = 1;
    k.prob[order[i]] = w[order[i]] / total;
  }
  k.num_strict = n_strict;
  k.num_loose = n_loose;
  return k;
}

std::vector<float> RandomLogits(size_t n, std::mt19937_64& rng, double scale) {
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(scale * normal(rng));
  return v;
}

// Greedy (temperature 0) and top_k = 1 at any temperature both give the host argmax exactly,
// ties to the lowest id, NaN as -inf; an all -inf / NaN row gives token 0 with logprob -inf.
TEST(SamplingGpu, GreedyAndTopKOneEqualHostArgmax) {
  std::mt19937_64 rng(Seed() + 104);
  for (int vocab : {17, 54, 97, 5000, 128256}) {
    const int rows = 17;
    const int64_t stride = vocab + (vocab == 97 ? 3 : 0);
    std::vector<float> logits(rows * stride, std::numeric_limits<float>::quiet_NaN());
    std::vector<RowParams> params(rows);
    std::uniform_int_distribution<int> pick(0, vocab - 1);
    for (int r = 0; r < rows; ++r) {
      auto row = RandomLogits(vocab, rng, 2.0);
      if (r % 3 == 0) {  // ties at the max, the first one not at id 0
        const float top = *std::max_element(row.begin(), row.end()) + 1.f;
        for (int j = 0; j < 4; ++j) row[pick(rng)] = top;
      }
      if (r % 4 == 1) {  // quantised logits: many ties everywhere
        for (auto& x : row) x = std::round(x);
      }
      if (r % 5 == 2) {
        for (int j = 0; j < vocab / 3; ++j)
          row[pick(rng)] = std::numeric_limits<float>::quiet_NaN();
        row[pick(rng)] = std::numeric_limits<float>::infinity() * -1;
      }
      if (r == 7) {
        for (auto& x : row) x = -std::numeric_limits<float>::infinity();
        row[vocab / 2] = std::numeric_limits<float>::quiet_NaN();
      }
      std::copy(row.begin(), row.end(), logits.begin() + r * stride);
      params[r].temperature = r % 2 == 0 ? 0.f : (r % 4 == 1 ? 0.7f : 1.5f);
      params[r].top_k = r % 2 == 0 ? (r % 4 == 0 ? 0 : 40) : 1;
      params[r].top_p = r % 6 == 0 ? 0.5f : 1.f;
      params[r].seed = rng();
      params[r].counter = r;
    }
    SampleResult res;
    RunGpuSampling(logits, vocab, stride, params, &res);
    if (HasFatalFailure()) return;
    int mismatches = 0, lp_bad = 0;
    double max_lp_err = 0;
    for (int r = 0; r < rows; ++r) {
      const float* row = logits.data() + r * stride;
      const int32_t want = HostArgmax(row, vocab);
      mismatches += res.tokens[r] != want;
      const double ref = HostLogprob(row, vocab, want);
      const double g = res.logprobs[r];
      if (std::isinf(ref)) {
        lp_bad += !(g == ref);
      } else {
        const double err = std::fabs(g - ref);
        max_lp_err = std::max(max_lp_err, std::isfinite(err) ? err : 1e30);
        lp_bad += !(err <= 1e-4 + 1e-5 * std::fabs(ref));
      }
    }
    std::printf("[sampling/greedy] vocab=%d rows=%d mismatches=%d logprob_bad=%d max_err=%.3g %s\n",
                vocab, rows, mismatches, lp_bad, max_lp_err,
                mismatches == 0 && lp_bad == 0 ? "PASS" : "FAIL");
    EXPECT_EQ(mismatches, 0);
    EXPECT_EQ(lp_bad, 0);
  }
}

// Every sampled token lies in the host's kept set (double), over many rows with random seeds:
// random and heavily tied logits, top-k with ties at the cut, top-p tiny (one token), top-k then
// top-p, temperatures below and above 1.
TEST(SamplingGpu, SampledTokensLieInTheExactKeptSet) {
  std::mt19937_64 rng(Seed() + 105);
  const struct {
    float temperature;
    int32_t top_k;
    float top_p;
  } configs[] = {{1.f, 0, 1.f},     {0.5f, 5, 1.f},  {1.f, 50, 1.f},    {2.f, 999, 1.f},
                 {1.f, 0, 0.9f},    {0.7f, 0, 0.5f}, {1.f, 0, 1e-6f},   {1.3f, 40, 0.8f},
                 {0.8f, 10, 0.95f}, {1.f, 3, 1e-6f}, {1e-3f, 0, 0.99f}, {1e4f, 7, 0.3f}};
  for (int vocab : {54, 1000, 32000}) {
    for (bool tied : {false, true}) {
      for (const auto& cfg : configs) {
        const int rows = 97;
        std::vector<float> logits(static_cast<size_t>(rows) * vocab);
        std::vector<RowParams> params(rows);
        for (int r = 0; r < rows; ++r) {
          auto row = RandomLogits(vocab, rng, 2.0);
          // Tied: 5 distinct values, so the cuts of top-k and top-p fall inside tie groups.
          if (tied) {
            for (auto& x : row) x = std::min(std::floor(std::fabs(x) * 1.2f), 4.f) - 4.f;
          }
          std::copy(row.begin(), row.end(), logits.begin() + static_cast<size_t>(r) * vocab);
          params[r] = {cfg.temperature, cfg.top_k, cfg.top_p, rng(), rng() % 1000};
        }
        SampleResult res;
        RunGpuSampling(logits, vocab, vocab, params, &res);
        if (HasFatalFailure()) return;
        int outside = 0, at_edge = 0, lp_bad = 0;
        double kept_sum = 0;
        for (int r = 0; r < rows; ++r) {
          const float* row = logits.data() + static_cast<size_t>(r) * vocab;
          const KeptSets k = HostKept(row, vocab, params[r]);
          kept_sum += k.num_strict;
          const int32_t tok = res.tokens[r];
          if (tok < 0 || tok >= vocab || !k.loose[tok]) {
            ++outside;
            continue;
          }
          at_edge += !k.strict[tok];
          const double ref = HostLogprob(row, vocab, tok);
          lp_bad += !(std::fabs(res.logprobs[r] - ref) <= 1e-4 + 1e-5 * std::fabs(ref));
        }
        std::printf(
            "[sampling/kept] vocab=%d tied=%d T=%g k=%d p=%g mean_kept=%.1f outside=%d "
            "at_edge=%d logprob_bad=%d %s\n",
            vocab, tied, cfg.temperature, cfg.top_k, cfg.top_p, kept_sum / rows, outside, at_edge,
            lp_bad, outside == 0 && lp_bad == 0 ? "PASS" : "FAIL");
        EXPECT_EQ(outside, 0);
        EXPECT_EQ(lp_bad, 0);
        if (cfg.top_p == 1e-6f) {  // a tiny top_p keeps exactly the most probable token
          for (int r = 0; r < rows; ++r) {
            EXPECT_EQ(res.tokens[r],
                      HostArgmax(logits.data() + static_cast<size_t>(r) * vocab, vocab));
          }
        }
      }
    }
  }
}

// Upper critical value of chi-square with `dof` degrees of freedom at p = 1e-4
// (Wilson-Hilferty; within a few percent for dof >= 3).
double ChiSquareCritical1e4(int dof) {
  const double z = 3.7190;  // upper 1e-4 quantile of the standard normal
  const double a = 2.0 / (9.0 * dof);
  return dof * std::pow(1 - a + z * std::sqrt(a), 3);
}

// The draw follows the exact truncated distribution: 50-token vocab, fixed logits, 60000 rows
// with distinct seeds and counters, a chi-square test against the host's exact probabilities
// (bins with fewer than 5 expected draws pooled), and no draw outside the kept set.
TEST(SamplingGpu, ChiSquareAgainstExactTruncatedDistribution) {
  std::mt19937_64 rng(Seed() + 106);
  const int vocab = 50, rows = 60000;
  const auto base = RandomLogits(vocab, rng, 1.0);
  const struct {
    float temperature;
    int32_t top_k;
    float top_p;
  } configs[] = {{1.f, 0, 1.f}, {0.7f, 10, 1.f}, {1.3f, 0, 0.8f}, {0.8f, 20, 0.9f}, {2.f, 0, 0.5f}};
  for (const auto& cfg : configs) {
    std::vector<float> logits(static_cast<size_t>(rows) * vocab);
    for (int r = 0; r < rows; ++r) std::copy(base.begin(), base.end(), logits.begin() + r * vocab);
    std::vector<RowParams> params(rows);
    const uint64_t seed0 = rng();
    for (int r = 0; r < rows; ++r) {
      // Rows share seeds in pairs but not counters, and share counters but not seeds: both must
      // give independent draws.
      params[r] = {cfg.temperature, cfg.top_k, cfg.top_p, seed0 + r / 2,
                   static_cast<uint64_t>(r % 2 + 7)};
    }
    SampleResult res;
    RunGpuSampling(logits, vocab, vocab, params, &res);
    if (HasFatalFailure()) return;
    const KeptSets k = HostKept(base.data(), vocab, params[0], 0.0);
    std::vector<int64_t> counts(vocab, 0);
    int outside = 0;
    for (int32_t tok : res.tokens) {
      if (tok < 0 || tok >= vocab || !k.strict[tok]) {
        ++outside;
      } else {
        ++counts[tok];
      }
    }
    double chi2 = 0, pooled_e = 0, pooled_c = 0;
    int bins = 0;
    for (int i = 0; i < vocab; ++i) {
      if (!k.strict[i]) continue;
      const double e = k.prob[i] * rows;
      if (e < 5) {
        pooled_e += e;
        pooled_c += counts[i];
        continue;
      }
      chi2 += (counts[i] - e) * (counts[i] - e) / e;
      ++bins;
    }
    if (pooled_e > 0) {
      chi2 += (pooled_c - pooled_e) * (pooled_c - pooled_e) / std::max(pooled_e, 1e-9);
      ++bins;
    }
    const double crit = ChiSquareCritical1e4(std::max(bins - 1, 1));
    const bool pass = outside == 0 && bins >= 3 && chi2 < crit;
    std::printf(
        "[sampling/chi2] vocab=%d draws=%d T=%g k=%d p=%g kept=%d bins=%d chi2=%.1f "
        "crit(1e-4)=%.1f outside=%d %s\n",
        vocab, rows, cfg.temperature, cfg.top_k, cfg.top_p, k.num_strict, bins, chi2, crit, outside,
        pass ? "PASS" : "FAIL");
    EXPECT_EQ(outside, 0);
    EXPECT_GE(bins, 3);
    EXPECT_LT(chi2, crit);
  }
}

// Same (seed, counter) -> same token, in any row and on a rerun; a new counter or seed -> a new,
// independent draw (a flat distribution over 4096 tokens: 256 draws give ~248 distinct tokens).
TEST(SamplingGpu, SeedAndCounterMakeDrawsReproducible) {
  std::mt19937_64 rng(Seed() + 107);
  const int vocab = 4096, rows = 256 + 64;
  std::vector<float> logits(static_cast<size_t>(rows) * vocab, 0.25f);
  std::vector<RowParams> params(rows);
  const uint64_t seed = rng();
  for (int r = 0; r < 256; ++r) params[r] = {1.f, 0, 1.f, seed, static_cast<uint64_t>(r)};
  for (int r = 256; r < rows; ++r) params[r] = {1.f, 0, 1.f, seed, static_cast<uint64_t>(r - 256)};
  SampleResult a, b;
  RunGpuSampling(logits, vocab, vocab, params, &a);
  if (HasFatalFailure()) return;
  RunGpuSampling(logits, vocab, vocab, params, &b);
  if (HasFatalFailure()) return;
  int rerun_diff = 0, row_diff = 0;
  for (int r = 0; r < rows; ++r) rerun_diff += a.tokens[r] != b.tokens[r];
  for (int r = 256; r < rows; ++r) row_diff += a.tokens[r] != a.tokens[r - 256];
  const std::set<int32_t> by_counter(a.tokens.begin(), a.tokens.begin() + 256);
  // Different seeds, same counter.
  std::vector<RowParams> p2(256);
  for (int r = 0; r < 256; ++r) p2[r] = {1.f, 0, 1.f, seed + 1 + r, 5};
  SampleResult c;
  RunGpuSampling(std::vector<float>(static_cast<size_t>(256) * vocab, 0.25f), vocab, vocab, p2, &c);
  if (HasFatalFailure()) return;
  const std::set<int32_t> by_seed(c.tokens.begin(), c.tokens.end());
  const bool pass =
      rerun_diff == 0 && row_diff == 0 && by_counter.size() >= 225 && by_seed.size() >= 225;
  std::printf(
      "[sampling/rng] rerun_diff=%d same_key_other_row_diff=%d distinct_by_counter=%zu "
      "distinct_by_seed=%zu (of 256, ~248 expected) %s\n",
      rerun_diff, row_diff, by_counter.size(), by_seed.size(), pass ? "PASS" : "FAIL");
  EXPECT_EQ(rerun_diff, 0);
  EXPECT_EQ(row_diff, 0);
  EXPECT_GE(by_counter.size(), 225u);
  EXPECT_GE(by_seed.size(), 225u);
}

// Llama-3's vocabulary at 256 rows with mixed per-row parameters, plus a CUDA-graph replay that
// must give the same tokens as the direct launch.
TEST(SamplingGpu, LargeVocabMixedRowsAndGraphReplay) {
  std::mt19937_64 rng(Seed() + 108);
  const int vocab = 128256, rows = 256;
  const int64_t stride = vocab + 64;  // rows of a padded logits buffer
  std::vector<float> logits(static_cast<size_t>(rows) * stride,
                            std::numeric_limits<float>::quiet_NaN());
  std::vector<RowParams> params(rows);
  for (int r = 0; r < rows; ++r) {
    const auto row = RandomLogits(vocab, rng, r % 2 ? 3.0 : 1.0);
    std::copy(row.begin(), row.end(), logits.begin() + static_cast<size_t>(r) * stride);
    const int kind = r % 6;
    params[r] = {kind == 0 ? 0.f : (r % 4 == 1 ? 0.6f : 1.f), kind == 2 || kind == 4 ? 50 : 0,
                 kind == 3 || kind == 4 ? 0.9f : (kind == 5 ? 0.3f : 1.f), rng(),
                 static_cast<uint64_t>(r * 13)};
  }
  SampleResult direct, graph;
  RunGpuSampling(logits, vocab, stride, params, &direct);
  if (HasFatalFailure()) return;
  RunGpuSampling(logits, vocab, stride, params, &graph, /*use_graph=*/true);
  if (HasFatalFailure()) return;
  int outside = 0, lp_bad = 0, graph_diff = 0;
  for (int r = 0; r < rows; ++r) {
    const float* row = logits.data() + static_cast<size_t>(r) * stride;
    const KeptSets k = HostKept(row, vocab, params[r]);
    const int32_t tok = direct.tokens[r];
    graph_diff += tok != graph.tokens[r] || direct.logprobs[r] != graph.logprobs[r];
    if (tok < 0 || tok >= vocab || !k.loose[tok]) {
      ++outside;
      continue;
    }
    const double ref = HostLogprob(row, vocab, tok);
    lp_bad += !(std::fabs(direct.logprobs[r] - ref) <= 1e-4 + 1e-5 * std::fabs(ref));
  }
  std::printf("[sampling/large] vocab=%d rows=%d outside=%d logprob_bad=%d graph_diff=%d %s\n",
              vocab, rows, outside, lp_bad, graph_diff,
              outside == 0 && lp_bad == 0 && graph_diff == 0 ? "PASS" : "FAIL");
  EXPECT_EQ(outside, 0);
  EXPECT_EQ(lp_bad, 0);
  EXPECT_EQ(graph_diff, 0);
}

TEST(SamplingGpu, PlanAndRunRejectBadArguments) {
  SamplingPlan plan;
  EXPECT_EQ(PlanSampling({.max_rows = 0, .vocab_size = 10}, &plan), cudaErrorInvalidValue);
  EXPECT_EQ(PlanSampling({.max_rows = 1, .vocab_size = (1 << 18) + 1}, &plan),
            cudaErrorInvalidValue);
  ASSERT_EQ(PlanSampling({.max_rows = 4, .vocab_size = 10}, &plan), cudaSuccess);
  DeviceBuffer d(1024);
  SamplingArgs a{.num_rows = 5,
                 .logits = d.as<float>(),
                 .temperature = d.as<float>(),
                 .tokens = d.as<int32_t>()};
  EXPECT_EQ(RunSampling(plan, a, nullptr, 0, nullptr), cudaErrorInvalidValue);  // > max_rows
  a.num_rows = 4;
  a.logits_stride = 9;
  EXPECT_EQ(RunSampling(plan, a, nullptr, 0, nullptr), cudaErrorInvalidValue);  // stride < vocab
  std::printf(
      "[sampling/plan] rejects 0 rows, vocab past 2^18, rows past the plan, short stride "
      "PASS\n");
}

}  // namespace
}  // namespace longview::cuda
