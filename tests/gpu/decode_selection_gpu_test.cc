// GPU tests of decode attention over a KV selection (kernels/cuda/decode_attention, selection
// mode: spans instead of block tables) and of the strided q of both modes.
//
// The reference implements cpu::SelectionAttention's semantics literally, in double: every key of
// a row's spans, rotated to its own position with exact angles, visible when its position is <=
// the query's; no visible key gives zeros. Selections come from the CPU builders
// (DenseSelection, SinkWindowSelection, AppendTokenRange) or are built HiP-like per
// KV head. Pool pages are NaN except the slots of live tokens, outputs are poisoned before every
// run, padding of strided q rows is NaN: a stray read or an unwritten output fails. Random inputs
// from the logged seed (LV_TEST_SEED=<n> to repeat). Run: gpu_kernel_tests
// --gtest_filter='DecodeSelectionGpu.*'.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kv_selection.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/decode_attention/decode_attention.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/key_stats/key_stats.h"
#include "tests/gpu/gpu_test_util.h"

namespace longview::cuda {
namespace {

// A paged KV pool of two layers ([layer][k|v][token][kv_head][head_dim] per page); layer 1 is
// read. Page 0 is never handed out.
struct Pool {
  DType dtype = DType::kBF16;
  int head_dim = 128, num_kv_heads = 2, page_size = 16;
  int64_t row = 0, page_elems = 0, k_offset = 0, v_offset = 0;
  int next_page = 1;
  std::vector<uint16_t> bits;  // kPoison except live tokens

  Pool(DType t, int d, int hkv, int ps, int num_pages)
      : dtype(t), head_dim(d), num_kv_heads(hkv), page_size(ps) {
    row = static_cast<int64_t>(hkv) * d;
    const int64_t kv_stride = ps * row;
    page_elems = 2 * 2 * kv_stride;
    k_offset = 2 * kv_stride;
    v_offset = k_offset + kv_stride;
    bits.assign(static_cast<size_t>(num_pages) * page_elems, kPoison);
  }
  int64_t Base(int page, int slot) const { return page * page_elems + slot * row; }
  double K(int page, int slot, int h, int d) const {
    return FromBits(bits[Base(page, slot) + k_offset + h * head_dim + d], dtype);
  }
  double V(int page, int slot, int h, int d) const {
    return FromBits(bits[Base(page, slot) + v_offset + h * head_dim + d], dtype);
  }
};

// Pages needed for a sequence of `num_tokens` whose blocks are live where live(block).
template <typename Live>
int CountLive(int64_t num_tokens, int page_size, Live live) {
  int n = 0;
  for (int64_t blk = 0; blk * page_size < num_tokens; ++blk) n += live(blk) ? 1 : 0;
  return n;
}

// A block table over fresh pages of `pool` for the live blocks (others -1), pages shuffled; the
// live tokens get random K and V (and layer 0's K, present and never read).
template <typename Live>
std::vector<int32_t> AllocSequence(Pool& pool, int64_t num_tokens, Live live,
                                   std::mt19937_64& rng) {
  const int ps = pool.page_size;
  const int64_t num_blocks = (num_tokens + ps - 1) / ps;
  std::vector<int32_t> ids;
  for (int64_t blk = 0; blk < num_blocks; ++blk) {
    if (live(blk)) ids.push_back(pool.next_page++);
  }
  const size_t need = static_cast<size_t>(pool.next_page) * pool.page_elems;
  if (pool.bits.size() < need) pool.bits.resize(need, kPoison);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::normal_distribution<float> normal;
  std::vector<int32_t> table(num_blocks, -1);
  size_t next = 0;
  for (int64_t blk = 0; blk < num_blocks; ++blk) {
    if (!live(blk)) continue;
    table[blk] = ids[next++];
    for (int s = 0; s < ps && blk * ps + s < num_tokens; ++s) {
      const int64_t base = pool.Base(table[blk], s);
      for (int64_t e = 0; e < pool.row; ++e) {
        pool.bits[base + pool.k_offset + e] = ToBits(normal(rng), pool.dtype);
        pool.bits[base + pool.v_offset + e] = ToBits(normal(rng), pool.dtype);
        pool.bits[base + e] = ToBits(normal(rng), pool.dtype);
      }
    }
  }
  return table;
}

struct SelCase {
  DType dtype = DType::kBF16;
  int head_dim = 128;
  int page_size = 16;
  int num_q_heads = 8;
  int num_kv_heads = 2;
  bool per_head = false;
  int partition_spans = 0;
  int max_spans = 0;  // 0 = the most spans of any row of any input
  int q_pad = 0;      // q_row_stride = num_q_heads * head_dim + q_pad (0: packed, stride 0)
  double q_scale = 1.0;
  bool use_graph = false;
  int num_sms = 132;
};

// One step's input: a selection and a query position per sequence.
struct SelInput {
  std::vector<KvSelection> sels;
  std::vector<int64_t> q_pos;
};

struct SelResult {
  int num_partitions = 0, partition_spans = 0, max_spans = 0;
  std::vector<std::vector<uint16_t>> out;  // per input
  std::vector<std::vector<double>> ref;
  std::vector<Comparison> cmp;
  std::vector<Comparison> naive_cmp;  // reference with float32 angles vs the exact one
  int64_t num_keys = 0;               // of the first input, summed over rows
};

// Key (page, slot, kv head) rotated to `pos` in double: [x1 cos - x2 sin | x2 cos + x1 sin].
// naive_angles: float32 angles (as a kernel computing p * inv_freq in float would).
std::vector<double> RotatedKey(const Pool& pool, int page, int slot, int h, int64_t pos,
                               const std::vector<float>& inv_freq, bool naive_angles) {
  const int half = pool.head_dim / 2;
  std::vector<double> k(pool.head_dim);
  for (int i = 0; i < half; ++i) {
    const double angle =
        naive_angles ? static_cast<double>(static_cast<float>(pos) * inv_freq[i])
                     : static_cast<double>(pos) * static_cast<double>(inv_freq[i]);
    const double x1 = pool.K(page, slot, h, i), x2 = pool.K(page, slot, h, half + i);
    k[i] = x1 * std::cos(angle) - x2 * std::sin(angle);
    k[half + i] = x2 * std::cos(angle) + x1 * std::sin(angle);
  }
  return k;
}

// cpu::SelectionAttention's semantics in double (window 0). naive_angles: float32 angles.
std::vector<double> ReferenceSelection(const SelCase& c, const Pool& pool, const SelInput& in,
                                       const std::vector<uint16_t>& q, int64_t q_stride,
                                       const std::vector<float>& inv_freq, bool naive_angles) {
  const int D = c.head_dim, G = c.num_q_heads / c.num_kv_heads;
  const int B = static_cast<int>(in.sels.size());
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  std::vector<double> out(static_cast<size_t>(B) * c.num_q_heads * D, 0.0);
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < c.num_kv_heads; ++h) {
      std::vector<double> keys, vals;
      std::vector<int64_t> pos;
      for (const KvSpan& sp : in.sels[b].ForHead(h)) {
        for (int32_t s = 0; s < sp.count; ++s) {
          const int64_t p = sp.first_position + s;
          pos.push_back(p);
          const int slot = sp.first_slot + s;
          const std::vector<double> k = RotatedKey(pool, sp.page_id, slot, h, p, inv_freq,
                                                   naive_angles);
          keys.insert(keys.end(), k.begin(), k.end());
          for (int d = 0; d < D; ++d) vals.push_back(pool.V(sp.page_id, slot, h, d));
        }
      }
      const size_t n = pos.size();
      for (int g = 0; g < G; ++g) {
        const int hq = h * G + g;
        const uint16_t* qh = &q[b * q_stride + static_cast<int64_t>(hq) * D];
        std::vector<double> s(n, -INFINITY);
        double mx = -INFINITY;
        for (size_t j = 0; j < n; ++j) {
          if (pos[j] > in.q_pos[b]) continue;  // the CPU reference's position mask
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += FromBits(qh[d], c.dtype) * keys[j * D + d];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        if (mx == -INFINITY) continue;  // no visible key: zeros
        double sum = 0;
        for (size_t j = 0; j < n; ++j) {
          s[j] = pos[j] > in.q_pos[b] ? 0.0 : std::exp(s[j] - mx);
          sum += s[j];
        }
        double* o = &out[(static_cast<size_t>(b) * c.num_q_heads + hq) * D];
        for (size_t j = 0; j < n; ++j) {
          for (int d = 0; d < D; ++d) o[d] += s[j] / sum * vals[j * D + d];
        }
      }
    }
  }
  return out;
}

// Rows of the kernel's CSR: per sequence, or per (sequence, KV head).
void Flatten(const SelCase& c, const SelInput& in, std::vector<KvSpan>* spans,
             std::vector<int32_t>* offsets) {
  spans->clear();
  offsets->assign(1, 0);
  for (const KvSelection& sel : in.sels) {
    if (c.per_head) {
      for (int h = 0; h < c.num_kv_heads; ++h) {
        for (const KvSpan& sp : sel.ForHead(h)) spans->push_back(sp);
        offsets->push_back(static_cast<int32_t>(spans->size()));
      }
    } else {
      EXPECT_TRUE(sel.head_begin.empty()) << "shared rows need one span list per sequence";
      spans->insert(spans->end(), sel.spans.begin(), sel.spans.end());
      offsets->push_back(static_cast<int32_t>(spans->size()));
    }
  }
}

// Plans once for all inputs (same batch size), runs each (replaying one captured graph with the
// span arrays rewritten in place when c.use_graph), compares each against its reference.
void RunSelection(const SelCase& c, const Pool& pool, const std::vector<SelInput>& inputs,
                  std::mt19937_64& rng, SelResult* res, bool check_naive = false) {
  const int D = c.head_dim;
  const int B = static_cast<int>(inputs[0].sels.size());
  const int64_t packed = static_cast<int64_t>(c.num_q_heads) * D;
  const int64_t q_stride = packed + c.q_pad;
  int max_row_spans = 1;
  size_t max_total_spans = 1;
  int64_t max_pos = 0;
  std::vector<std::vector<KvSpan>> flat(inputs.size());
  std::vector<std::vector<int32_t>> offsets(inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    Flatten(c, inputs[k], &flat[k], &offsets[k]);
    for (size_t r = 0; r + 1 < offsets[k].size(); ++r) {
      max_row_spans = std::max(max_row_spans, offsets[k][r + 1] - offsets[k][r]);
    }
    max_total_spans = std::max(max_total_spans, flat[k].size());
    for (const KvSpan& sp : flat[k]) {
      if (sp.count > 0) max_pos = std::max(max_pos, sp.first_position + sp.count - 1);
    }
    for (int64_t qp : inputs[k].q_pos) max_pos = std::max(max_pos, qp);
  }
  cpu::RopeParams rp{.head_dim = D, .theta = 10000.0};
  const std::vector<float> inv_freq = cpu::InvFrequencies(rp);
  const RopeTablesHost tables = BuildRopeTables(inv_freq, max_pos);

  DecodeAttentionShape shape{.dtype = c.dtype, .head_dim = D, .num_q_heads = c.num_q_heads,
                             .num_kv_heads = c.num_kv_heads, .batch_size = B,
                             .page_size = c.page_size, .max_kv_len = 0, .max_position = max_pos,
                             .rope_hi_rows = tables.num_hi_rows, .num_sms = c.num_sms,
                             .max_spans = c.max_spans > 0 ? c.max_spans : max_row_spans,
                             .spans_per_kv_head = c.per_head,
                             .partition_spans = c.partition_spans};
  DecodeAttentionPlan plan;
  CUDA_OK(PlanDecodeAttention(shape, &plan));
  res->num_partitions = plan.num_partitions;
  res->partition_spans = plan.partition_spans;
  res->max_spans = shape.max_spans;

  const size_t q_elems = static_cast<size_t>(B) * q_stride;
  const size_t out_elems = static_cast<size_t>(B) * packed;
  DeviceBuffer dq(q_elems * 2), dout(out_elems * 2), dpages(pool.bits.size() * 2),
      dspans(max_total_spans * sizeof(KvSpan)), doffs(offsets[0].size() * 4),
      dlo(tables.lo.size() * 4), dhi(tables.hi.size() * 4), dws(plan.workspace_bytes);
  ASSERT_TRUE(dq.ok() && dout.ok() && dpages.ok() && dspans.ok() && doffs.ok() && dlo.ok() &&
              dhi.ok() && dws.ok());
  CUDA_OK(Upload(dpages, pool.bits));
  CUDA_OK(Upload(dlo, tables.lo));
  CUDA_OK(Upload(dhi, tables.hi));
  if (plan.workspace_bytes > 0) CUDA_OK(cudaMemset(dws.get(), 0xFF, plan.workspace_bytes));

  DecodeAttentionArgs args{.q = dq.get(), .q_row_stride = c.q_pad > 0 ? q_stride : 0,
                           .out = dout.get(), .pages = dpages.get(),
                           .page_stride = pool.page_elems, .k_offset = pool.k_offset,
                           .v_offset = pool.v_offset, .spans = dspans.as<KvSpan>(),
                           .span_offsets = doffs.as<int32_t>(), .rope_lo = dlo.as<float>(),
                           .rope_hi = dhi.as<float>(),
                           .scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)))};
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  if (c.use_graph) {
    CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const cudaError_t run_err =
        RunDecodeAttention(plan, args, dws.get(), plan.workspace_bytes, stream);
    CUDA_OK(cudaStreamEndCapture(stream, &graph));
    CUDA_OK(run_err);
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  }
  std::normal_distribution<float> normal;
  res->out.assign(inputs.size(), {});
  res->ref.assign(inputs.size(), {});
  res->cmp.assign(inputs.size(), {});
  res->naive_cmp.assign(inputs.size(), {});
  for (size_t k = 0; k < inputs.size(); ++k) {
    std::vector<uint16_t> q(q_elems, kPoison);  // padding of strided rows stays NaN
    for (int b = 0; b < B; ++b) {
      for (int64_t e = 0; e < packed; ++e) {
        q[b * q_stride + e] = ToBits(static_cast<float>(c.q_scale * normal(rng)), c.dtype);
      }
    }
    // Rewrites the arrays at the addresses the graph captured.
    CUDA_OK(Upload(dq, q));
    CUDA_OK(cudaMemcpy(dspans.get(), flat[k].data(), flat[k].size() * sizeof(KvSpan),
                       cudaMemcpyHostToDevice));
    CUDA_OK(Upload(doffs, offsets[k]));
    CUDA_OK(cudaMemset(dout.get(), 0xFF, out_elems * 2));
    if (c.use_graph) {
      CUDA_OK(cudaGraphLaunch(exec, stream));
    } else {
      CUDA_OK(RunDecodeAttention(plan, args, dws.get(), plan.workspace_bytes, stream));
    }
    CUDA_OK(cudaStreamSynchronize(stream));
    res->out[k].resize(out_elems);
    CUDA_OK(Download(res->out[k], dout));
    res->ref[k] = ReferenceSelection(c, pool, inputs[k], q, q_stride, inv_freq, false);
    res->cmp[k] = Compare(res->out[k], c.dtype, res->ref[k], TolFor(c.dtype));
    if (check_naive) {
      const std::vector<double> naive =
          ReferenceSelection(c, pool, inputs[k], q, q_stride, inv_freq, true);
      std::vector<uint16_t> naive_bits(naive.size());
      for (size_t i = 0; i < naive.size(); ++i) {
        naive_bits[i] = ToBits(static_cast<float>(naive[i]), c.dtype);
      }
      res->naive_cmp[k] = Compare(naive_bits, c.dtype, res->ref[k], TolFor(c.dtype));
    }
  }
  if (c.use_graph) {
    CUDA_OK(cudaGraphExecDestroy(exec));
    CUDA_OK(cudaGraphDestroy(graph));
  }
  CUDA_OK(cudaStreamDestroy(stream));
  res->num_keys = 0;
  for (const KvSpan& sp : flat[0]) res->num_keys += sp.count;
}

std::string Describe(const SelCase& c, const SelResult& r) {
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "%s hd=%d ps=%d hq=%d hkv=%d per_head=%d max_spans=%d parts=%d x %d spans "
                "q_pad=%d graph=%d keys=%lld",
                DTypeName(c.dtype), c.head_dim, c.page_size, c.num_q_heads, c.num_kv_heads,
                c.per_head, r.max_spans, r.num_partitions, r.partition_spans, c.q_pad,
                c.use_graph, static_cast<long long>(r.num_keys));
  return buf;
}

void ExpectAllPass(const SelCase& c, const SelResult& r, const char* tag) {
  for (size_t k = 0; k < r.cmp.size(); ++k) {
    std::printf("[decode_selection/%s] %s input=%zu %s\n", tag, Describe(c, r).c_str(), k,
                Verdict(r.cmp[k], TolFor(c.dtype)).c_str());
    EXPECT_TRUE(r.cmp[k].Pass(TolFor(c.dtype)))
        << tag << " " << Describe(c, r) << " input " << k << " first bad " << r.cmp[k].first_bad;
  }
}

// Adds a StreamingLLM sequence of num_tokens (query = the last token) whose blocks outside the
// sinks and the window are released (-1 in the block table).
void AddSinkWindow(Pool& pool, int64_t num_tokens, int64_t sinks, int64_t window,
                   std::mt19937_64& rng, SelInput* in) {
  const int ps = pool.page_size;
  const int64_t q_tok = num_tokens - 1;
  const int64_t win_begin = std::max<int64_t>(0, q_tok - window + 1);
  auto live = [&](int64_t blk) {
    return blk * ps < sinks || (blk + 1) * ps > win_begin;
  };
  const std::vector<int32_t> table = AllocSequence(pool, num_tokens, live, rng);
  int64_t q_pos = 0;
  in->sels.push_back(SinkWindowSelection(table, ps, q_tok, sinks, window, &q_pos));
  in->q_pos.push_back(q_pos);
}

int SinkWindowPages(int64_t num_tokens, int ps, int64_t sinks, int64_t window) {
  const int64_t win_begin = std::max<int64_t>(0, num_tokens - window);
  return CountLive(num_tokens, ps,
                   [&](int64_t blk) { return blk * ps < sinks || (blk + 1) * ps > win_begin; });
}

// Shared spans per sequence: StreamingLLM with released middle pages, dense, empty, a window
// longer than the sequence; every page size, dtype, head dim and GQA group 1/4/8; partitions
// chosen by the planner and forced to one span each (many partitions).
TEST(DecodeSelectionGpu, SharedSpansSweep) {
  std::mt19937_64 rng(Seed() + 101);
  const struct {
    int hq, hkv;
  } heads[] = {{3, 3}, {8, 2}, {16, 2}};
  for (DType t : kDTypes) {
    for (int head_dim : {64, 128}) {
      for (int page_size : {1, 8, 16}) {
        for (auto [hq, hkv] : heads) {
          for (int partition_spans : {0, 1}) {
            SelCase c{.dtype = t, .head_dim = head_dim, .page_size = page_size,
                      .num_q_heads = hq, .num_kv_heads = hkv,
                      .partition_spans = partition_spans};
            const int pages = SinkWindowPages(600, page_size, 4, 100) +
                              SinkWindowPages(97, page_size, 0, 54) +
                              SinkWindowPages(33, page_size, 4, 64) + 17 + 4;
            Pool pool(t, head_dim, hkv, page_size, pages);
            SelInput in;
            AddSinkWindow(pool, 600, 4, 100, rng, &in);
            {  // dense over 17 tokens
              auto table = AllocSequence(pool, 17, [](int64_t) { return true; }, rng);
              in.sels.push_back(DenseSelection(table, page_size, 17));
              in.q_pos.push_back(16);
            }
            in.sels.emplace_back();  // no key: zeros
            in.q_pos.push_back(5);
            AddSinkWindow(pool, 97, 0, 54, rng, &in);
            AddSinkWindow(pool, 33, 4, 64, rng, &in);  // window covers all: dense
            SelResult r;
            RunSelection(c, pool, {in}, rng, &r);
            if (HasFatalFailure()) return;
            ExpectAllPass(c, r, "shared");
            if (partition_spans == 1) {
              EXPECT_EQ(r.num_partitions, r.max_spans);
            }
          }
        }
      }
    }
  }
}

// Pages larger than a warp chunk (16 keys at head_dim 128, 32 at 64): a span is cut into several
// chunks (chunks_per_span 2-4), partial spans leave empty chunks.
TEST(DecodeSelectionGpu, PagesLargerThanAChunk) {
  std::mt19937_64 rng(Seed() + 107);
  for (DType t : kDTypes) {
    for (int head_dim : {64, 128}) {
      for (int page_size : {40, 64}) {
        for (int partition_spans : {0, 1}) {
          SelCase c{.dtype = t, .head_dim = head_dim, .page_size = page_size, .num_q_heads = 8,
                    .num_kv_heads = 2, .partition_spans = partition_spans};
          const int pages = SinkWindowPages(2000, page_size, 4, 333) +
                            SinkWindowPages(97, page_size, 5, 54) + 20;
          Pool pool(t, head_dim, 2, page_size, pages);
          SelInput in;
          AddSinkWindow(pool, 2000, 4, 333, rng, &in);
          AddSinkWindow(pool, 97, 5, 54, rng, &in);
          {
            auto table = AllocSequence(pool, 301, [](int64_t) { return true; }, rng);
            in.sels.push_back(DenseSelection(table, page_size, 301));
            in.q_pos.push_back(300);
          }
          SelResult r;
          RunSelection(c, pool, {in}, rng, &r);
          if (HasFatalFailure()) return;
          ExpectAllPass(c, r, "large_pages");
        }
      }
    }
  }
}

// HiP-like per KV head: each head its own random subset of blocks (spans out of page order,
// positions with gaps), ReKV-like re-numbered positions on some heads, a head with no span and a
// head whose only spans have count 0 (both zeros).
TEST(DecodeSelectionGpu, PerKvHeadRandomBlocks) {
  std::mt19937_64 rng(Seed() + 102);
  const struct {
    int hq, hkv;
  } heads[] = {{4, 4}, {16, 4}, {32, 4}};
  for (DType t : kDTypes) {
    for (int head_dim : {64, 128}) {
      for (int page_size : {1, 8, 16}) {
        for (auto [hq, hkv] : heads) {
          for (int partition_spans : {0, 3}) {
            SelCase c{.dtype = t, .head_dim = head_dim, .page_size = page_size,
                      .num_q_heads = hq, .num_kv_heads = hkv, .per_head = true,
                      .partition_spans = partition_spans};
            const std::vector<int64_t> lens = {777, 54, 1000};
            int pages = 0;
            for (int64_t n : lens) pages += static_cast<int>((n + page_size - 1) / page_size);
            Pool pool(t, head_dim, hkv, page_size, pages + 2);
            SelInput in;
            for (size_t b = 0; b < lens.size(); ++b) {
              const int64_t n = lens[b];
              auto table = AllocSequence(pool, n, [](int64_t) { return true; }, rng);
              const int64_t hip_block = 2 * page_size;  // tokens per selectable block
              const int64_t num_hip = (n + hip_block - 1) / hip_block;
              KvSelection sel;
              sel.head_begin.push_back(0);
              for (int h = 0; h < hkv; ++h) {
                const bool empty = b == 1 && h == 1;
                const bool zero_count = b == 2 && h == 0;
                const bool renumber = h % 2 == 1;  // ReKV: contiguous positions
                if (zero_count) {
                  sel.spans.push_back({.page_id = table[0], .first_slot = 0, .count = 0,
                                       .first_position = 3});
                  sel.spans.push_back({.page_id = -1, .first_slot = 0, .count = 0,
                                       .first_position = 0});
                } else if (!empty) {
                  std::vector<int64_t> blocks(num_hip);
                  std::iota(blocks.begin(), blocks.end(), 0);
                  std::shuffle(blocks.begin(), blocks.end(), rng);
                  blocks.resize(std::max<int64_t>(1, num_hip / 3));
                  int64_t next_pos = 0;
                  for (int64_t blk : blocks) {  // shuffled: out of page and position order
                    const int64_t first = blk * hip_block;
                    const int64_t cnt = std::min(hip_block, n - first);
                    AppendTokenRange(table, page_size, first, cnt,
                                          renumber ? next_pos : first, sel);
                    next_pos += cnt;
                  }
                }
                sel.head_begin.push_back(static_cast<int32_t>(sel.spans.size()));
              }
              in.sels.push_back(std::move(sel));
              in.q_pos.push_back(n - 1 + static_cast<int64_t>(b) * 5);  // >= every position
            }
            SelResult r;
            RunSelection(c, pool, {in}, rng, &r);
            if (HasFatalFailure()) return;
            ExpectAllPass(c, r, "per_head");
            // Zero-key heads are exactly zero.
            const int G = hq / hkv, D = head_dim;
            for (auto [b, h] : {std::pair{1, 1}, {2, 0}}) {
              int64_t nonzero = 0;
              for (int g = 0; g < G; ++g) {
                for (int d = 0; d < D; ++d) {
                  const size_t idx = (static_cast<size_t>(b) * hq + h * G + g) * D + d;
                  nonzero += FromBits(r.out[0][idx], t) != 0.0;
                }
              }
              EXPECT_EQ(nonzero, 0) << Describe(c, r) << " b=" << b << " kv_head=" << h;
            }
          }
        }
      }
    }
  }
}

// DenseSelection through the selection path equals the dense kernel on the same pool; q is
// strided (q_row_stride > packed, padding NaN) on both paths, and packed once.
TEST(DecodeSelectionGpu, DenseSelectionMatchesDenseKernel) {
  std::mt19937_64 rng(Seed() + 103);
  for (DType t : kDTypes) {
    for (int head_dim : {64, 128}) {
      for (auto [page_size, hq, hkv, q_pad] :
           {std::tuple{16, 8, 2, 0}, {16, 8, 2, 3 * 128}, {8, 16, 2, 2 * 8 * 64}, {1, 4, 4, 8}}) {
        SelCase c{.dtype = t, .head_dim = head_dim, .page_size = page_size, .num_q_heads = hq,
                  .num_kv_heads = hkv, .q_pad = q_pad};
        const std::vector<int> lens = {1, 17, 54, 97, 300, 0};
        const std::vector<int> starts = {0, 5, 70000, 0, 1234, 0};
        int pages = 2;
        for (int n : lens) pages += (n + page_size - 1) / page_size;
        Pool pool(t, head_dim, hkv, page_size, pages);
        const int B = static_cast<int>(lens.size());
        int max_blocks = 1;
        for (int n : lens) max_blocks = std::max(max_blocks, (n + page_size - 1) / page_size);
        const int bt_stride = max_blocks + 1;
        std::vector<int32_t> block_tables(static_cast<size_t>(B) * bt_stride, 0);
        SelInput in;
        for (int b = 0; b < B; ++b) {
          auto table = AllocSequence(pool, lens[b], [](int64_t) { return true; }, rng);
          std::copy(table.begin(), table.end(), block_tables.begin() + b * bt_stride);
          KvSelection sel =
              starts[b] == 0 ? DenseSelection(table, page_size, lens[b]) : KvSelection{};
          if (starts[b] != 0) AppendTokenRange(table, page_size, 0, lens[b], starts[b], sel);
          in.sels.push_back(std::move(sel));
          in.q_pos.push_back(starts[b] + std::max(lens[b], 1) - 1);
        }
        SelResult r;
        RunSelection(c, pool, {in}, rng, &r);
        if (HasFatalFailure()) return;
        ExpectAllPass(c, r, "dense_selection");

        // The dense kernel and the selection path on the same pool and one fresh q.
        const int D = head_dim;
        const int64_t packed = static_cast<int64_t>(hq) * D, q_stride = packed + q_pad;
        std::vector<uint16_t> q(static_cast<size_t>(B) * q_stride, kPoison);
        std::normal_distribution<float> normal;
        for (int b = 0; b < B; ++b) {
          for (int64_t e = 0; e < packed; ++e) q[b * q_stride + e] = ToBits(normal(rng), t);
        }
        int64_t max_pos = 0;
        for (int64_t p : in.q_pos) max_pos = std::max(max_pos, p);
        const std::vector<float> inv_freq =
            cpu::InvFrequencies(cpu::RopeParams{.head_dim = D, .theta = 10000.0});
        const RopeTablesHost tables = BuildRopeTables(inv_freq, max_pos);
        DecodeAttentionShape shape{.dtype = t, .head_dim = D, .num_q_heads = hq,
                                   .num_kv_heads = hkv, .batch_size = B, .page_size = page_size,
                                   .max_kv_len = 300, .max_position = max_pos,
                                   .rope_hi_rows = tables.num_hi_rows, .num_sms = 132};
        DecodeAttentionPlan plan;
        CUDA_OK(PlanDecodeAttention(shape, &plan));
        std::vector<int32_t> dl(lens.begin(), lens.end()), ds(starts.begin(), starts.end());
        const size_t out_elems = static_cast<size_t>(B) * packed;
        DeviceBuffer dq(q.size() * 2), dout(out_elems * 2), dpages(pool.bits.size() * 2),
            dbt(block_tables.size() * 4), dlens(dl.size() * 4), dstarts(ds.size() * 4),
            dlo(tables.lo.size() * 4), dhi(tables.hi.size() * 4), dws(plan.workspace_bytes);
        ASSERT_TRUE(dq.ok() && dout.ok() && dpages.ok() && dbt.ok() && dlens.ok() &&
                    dstarts.ok() && dlo.ok() && dhi.ok() && dws.ok());
        CUDA_OK(Upload(dq, q));
        CUDA_OK(Upload(dpages, pool.bits));
        CUDA_OK(Upload(dbt, block_tables));
        CUDA_OK(Upload(dlens, dl));
        CUDA_OK(Upload(dstarts, ds));
        CUDA_OK(Upload(dlo, tables.lo));
        CUDA_OK(Upload(dhi, tables.hi));
        CUDA_OK(cudaMemset(dout.get(), 0xFF, out_elems * 2));
        DecodeAttentionArgs args{.q = dq.get(), .q_row_stride = q_pad > 0 ? q_stride : 0,
                                 .out = dout.get(), .pages = dpages.get(),
                                 .page_stride = pool.page_elems, .k_offset = pool.k_offset,
                                 .v_offset = pool.v_offset, .block_tables = dbt.as<int32_t>(),
                                 .block_table_stride = bt_stride, .kv_lens = dlens.as<int32_t>(),
                                 .pos_start = dstarts.as<int32_t>(), .rope_lo = dlo.as<float>(),
                                 .rope_hi = dhi.as<float>(),
                                 .scale = static_cast<float>(1.0 / std::sqrt(double(D)))};
        CUDA_OK(RunDecodeAttention(plan, args, dws.get(), plan.workspace_bytes, nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<uint16_t> dense_out(out_elems);
        CUDA_OK(Download(dense_out, dout));
        const std::vector<double> ref =
            ReferenceSelection(c, pool, in, q, q_stride, inv_freq, false);
        const Comparison dc = Compare(dense_out, t, ref, TolFor(t));
        std::printf("[decode_selection/dense_kernel] %s %s\n", Describe(c, r).c_str(),
                    Verdict(dc, TolFor(t)).c_str());
        EXPECT_TRUE(dc.Pass(TolFor(t))) << "dense kernel, strided q: " << Describe(c, r);

        // Same q for both paths: run the selection path on this q too and compare outputs.
        DecodeAttentionShape sshape = shape;
        sshape.max_kv_len = 0;
        sshape.max_spans = 0;
        std::vector<KvSpan> flat;
        std::vector<int32_t> offs;
        Flatten(c, in, &flat, &offs);
        for (size_t i = 0; i + 1 < offs.size(); ++i) {
          sshape.max_spans = std::max(sshape.max_spans, offs[i + 1] - offs[i]);
        }
        DecodeAttentionPlan splan;
        CUDA_OK(PlanDecodeAttention(sshape, &splan));
        DeviceBuffer dspans(std::max<size_t>(1, flat.size()) * sizeof(KvSpan)),
            doffs(offs.size() * 4), dsws(splan.workspace_bytes), dsout(out_elems * 2);
        ASSERT_TRUE(dspans.ok() && doffs.ok() && dsws.ok() && dsout.ok());
        CUDA_OK(cudaMemcpy(dspans.get(), flat.data(), flat.size() * sizeof(KvSpan),
                           cudaMemcpyHostToDevice));
        CUDA_OK(Upload(doffs, offs));
        CUDA_OK(cudaMemset(dsout.get(), 0xFF, out_elems * 2));
        DecodeAttentionArgs sargs = args;
        sargs.out = dsout.get();
        sargs.block_tables = nullptr;
        sargs.kv_lens = nullptr;
        sargs.pos_start = nullptr;
        sargs.spans = dspans.as<KvSpan>();
        sargs.span_offsets = doffs.as<int32_t>();
        CUDA_OK(RunDecodeAttention(splan, sargs, dsws.get(), splan.workspace_bytes, nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<uint16_t> sel_out(out_elems);
        CUDA_OK(Download(sel_out, dsout));
        std::vector<double> dense_d(out_elems);
        for (size_t i = 0; i < out_elems; ++i) dense_d[i] = FromBits(dense_out[i], t);
        const Comparison sc = Compare(sel_out, t, dense_d, TolFor(t));
        std::printf("[decode_selection/vs_dense_kernel] %s %s\n", Describe(c, r).c_str(),
                    Verdict(sc, TolFor(t)).c_str());
        EXPECT_TRUE(sc.Pass(TolFor(t))) << "selection vs dense kernel: " << Describe(c, r);
      }
    }
  }
}

// Long StreamingLLM sequences (up to ~1M tokens, page size 16) whose middle pages are released,
// selected with re-assigned positions (SinkWindowSelection), on the same pages with the
// original positions up to ~1M, and with positions extended by 15M (HiP-like; there the exact
// rotation must beat float32 angles by a wide margin, as in the dense test).
TEST(DecodeSelectionGpu, LongSequencesReleasedMiddleAndLargePositions) {
  std::mt19937_64 rng(Seed() + 104);
  for (DType t : kDTypes) {
    for (int head_dim : {64, 128}) {
      const int ps = 16;
      SelCase c{.dtype = t, .head_dim = head_dim, .page_size = ps, .num_q_heads = 8,
                .num_kv_heads = 2, .q_scale = 4.0};
      const std::vector<int64_t> lens = {200001, 1000003, 32768};
      const std::vector<int64_t> windows = {1000, 517, 4096};
      int pages = 2;
      for (size_t b = 0; b < lens.size(); ++b) pages += SinkWindowPages(lens[b], ps, 4, windows[b]);
      Pool pool(t, head_dim, 2, ps, pages);
      SelInput shifted, original, extended;
      for (size_t b = 0; b < lens.size(); ++b) {
        AddSinkWindow(pool, lens[b], 4, windows[b], rng, &shifted);
        // Same pages, keys at their own positions: rebuild from the selection's spans.
        KvSelection orig;
        int64_t tok_pos = 0;
        for (size_t i = 0; i < shifted.sels.back().spans.size(); ++i) {
          KvSpan sp = shifted.sels.back().spans[i];
          const int64_t sinks_keys = 4;
          if (sp.first_position >= sinks_keys) {
            sp.first_position += lens[b] - windows[b] - sinks_keys;  // token index
          }
          tok_pos = std::max(tok_pos, sp.first_position + sp.count - 1);
          orig.spans.push_back(sp);
        }
        KvSelection ext = orig;
        for (KvSpan& sp : ext.spans) sp.first_position += 15000000;
        extended.sels.push_back(std::move(ext));
        extended.q_pos.push_back(tok_pos + 15000000);
        original.sels.push_back(std::move(orig));
        original.q_pos.push_back(tok_pos);
        EXPECT_EQ(tok_pos, lens[b] - 1);
      }
      SelResult r1, r2, r3;
      RunSelection(c, pool, {shifted}, rng, &r1);
      if (HasFatalFailure()) return;
      ExpectAllPass(c, r1, "long_shifted");
      RunSelection(c, pool, {original}, rng, &r2, /*check_naive=*/true);
      if (HasFatalFailure()) return;
      ExpectAllPass(c, r2, "long_original_positions");
      RunSelection(c, pool, {extended}, rng, &r3, /*check_naive=*/true);
      if (HasFatalFailure()) return;
      ExpectAllPass(c, r3, "long_extended_positions");
      std::printf("[decode_selection/rope] float32-angle reference nmse: ~1M %.3g, ~16M %.3g; "
                  "kernel %.3g, %.3g\n",
                  r2.naive_cmp[0].nmse, r3.naive_cmp[0].nmse, r2.cmp[0].nmse, r3.cmp[0].nmse);
      EXPECT_LT(r3.cmp[0].nmse * 10, r3.naive_cmp[0].nmse)
          << "test cannot tell exact from float angles";
    }
  }
}

// One captured graph replayed over several steps; the span arrays, offsets and q are rewritten
// at the same addresses between replays (span counts change, a row goes empty).
TEST(DecodeSelectionGpu, CudaGraphReplayWithRewrittenSpans) {
  std::mt19937_64 rng(Seed() + 105);
  for (DType t : kDTypes) {
    for (auto [per_head, partition_spans] : {std::pair{false, 0}, {true, 2}, {true, 0}}) {
      const int ps = 8, hkv = 2;
      SelCase c{.dtype = t, .head_dim = 128, .page_size = ps, .num_q_heads = 8,
                .num_kv_heads = hkv, .per_head = per_head, .partition_spans = partition_spans,
                .max_spans = 200, .q_pad = 64, .use_graph = true};
      const std::vector<int64_t> lens = {700, 97, 1200};
      int pages = 2;
      for (int64_t n : lens) pages += static_cast<int>((n + ps - 1) / ps);
      Pool pool(t, 128, hkv, ps, pages);
      std::vector<std::vector<int32_t>> tables;
      for (int64_t n : lens) {
        tables.push_back(AllocSequence(pool, n, [](int64_t) { return true; }, rng));
      }
      std::vector<SelInput> steps;
      for (int step = 0; step < 3; ++step) {
        SelInput in;
        for (size_t b = 0; b < lens.size(); ++b) {
          const int64_t q_tok = lens[b] - 1 - step * 7;
          const int64_t window = step == 1 ? 300 : 100 + 50 * static_cast<int64_t>(b);
          int64_t q_pos = 0;
          KvSelection sel;
          if (!(step == 2 && b == 1)) {  // sequence 1 selects nothing at step 2
            sel = SinkWindowSelection(tables[b], ps, q_tok, 4, window, &q_pos);
          }
          if (per_head) {  // head 1: a different window
            KvSelection h1 =
                SinkWindowSelection(tables[b], ps, q_tok, 0, window / 2 + 1, &q_pos);
            KvSelection both;
            both.spans = sel.spans;
            both.head_begin = {0, static_cast<int32_t>(sel.spans.size())};
            both.spans.insert(both.spans.end(), h1.spans.begin(), h1.spans.end());
            both.head_begin.push_back(static_cast<int32_t>(both.spans.size()));
            sel = std::move(both);
            q_pos = q_tok;  // >= every position of both heads
          }
          in.sels.push_back(std::move(sel));
          in.q_pos.push_back(q_pos);
        }
        steps.push_back(std::move(in));
      }
      SelResult r;
      RunSelection(c, pool, steps, rng, &r);
      if (HasFatalFailure()) return;
      ExpectAllPass(c, r, "graph");
    }
  }
}

// A row with more spans than the plan allows, and a row with a malformed span, give NaN for
// their heads (never truncated attention); the other rows are unaffected.
TEST(DecodeSelectionGpu, RowsBeyondPlanOrMalformedAreNaN) {
  std::mt19937_64 rng(Seed() + 106);
  for (int partition_spans : {8, 2}) {  // one partition (direct write), four (combine)
    const int ps = 16, hkv = 2, hq = 8, D = 128;
    SelCase c{.dtype = DType::kBF16, .head_dim = D, .page_size = ps, .num_q_heads = hq,
              .num_kv_heads = hkv, .partition_spans = partition_spans, .max_spans = 8};
    Pool pool(c.dtype, D, hkv, ps, 40);
    SelInput in;
    const std::vector<int64_t> lens = {100, 300, 90, 64};
    for (int64_t n : lens) {
      auto table = AllocSequence(pool, n, [](int64_t) { return true; }, rng);
      in.sels.push_back(DenseSelection(table, ps, n));
      in.q_pos.push_back(n - 1);
    }
    // Sequence 1: 19 spans > 8. Sequence 2: a span past its page's end.
    in.sels[2].spans[1].count = ps;
    in.sels[2].spans[1].first_slot = 1;
    SelResult r;
    RunSelection(c, pool, {in}, rng, &r);
    if (HasFatalFailure()) return;
    int64_t nan_count = 0, bad_others = 0;
    const Tolerance tol = TolFor(c.dtype);
    for (int b = 0; b < 4; ++b) {
      for (int i = 0; i < hq * D; ++i) {
        const size_t idx = static_cast<size_t>(b) * hq * D + i;
        const double g = FromBits(r.out[0][idx], c.dtype);
        if (b == 1 || b == 2) {
          nan_count += std::isnan(g);
        } else {
          bad_others +=
              !(std::fabs(g - r.ref[0][idx]) <= tol.atol + tol.rtol * std::fabs(r.ref[0][idx]));
        }
      }
    }
    std::printf("[decode_selection/bounds] parts=%d x %d nan=%lld/%d others_bad=%lld %s\n",
                r.num_partitions, r.partition_spans, static_cast<long long>(nan_count),
                2 * hq * D, static_cast<long long>(bad_others),
                nan_count == 2 * hq * D && bad_others == 0 ? "PASS" : "FAIL");
    EXPECT_EQ(nan_count, 2 * hq * D);
    EXPECT_EQ(bad_others, 0);
  }
}

TEST(DecodeSelectionGpu, PlanAndRunRejectBadArguments) {
  DecodeAttentionShape s{.dtype = DType::kBF16, .head_dim = 128, .num_q_heads = 8,
                         .num_kv_heads = 2, .batch_size = 1, .page_size = 16, .max_position = 15,
                         .window = 64, .rope_hi_rows = 1, .max_spans = 4};
  DecodeAttentionPlan plan;
  EXPECT_EQ(PlanDecodeAttention(s, &plan), cudaErrorInvalidValue);  // window in selection mode
  s.window = 0;
  s.max_position = 1024;  // beyond the tables
  EXPECT_EQ(PlanDecodeAttention(s, &plan), cudaErrorInvalidValue);
  s.max_position = 15;
  ASSERT_EQ(PlanDecodeAttention(s, &plan), cudaSuccess);
  EXPECT_EQ(plan.partition_tokens, 0);
  EXPECT_GE(plan.partition_spans, 1);
  DeviceBuffer buf(1 << 16);
  ASSERT_TRUE(buf.ok());
  DecodeAttentionArgs a{.q = buf.get(), .out = buf.get(), .pages = buf.get(),
                        .spans = nullptr, .span_offsets = buf.as<int32_t>(),
                        .rope_lo = buf.as<float>(), .rope_hi = buf.as<float>(), .scale = 1.f};
  EXPECT_EQ(RunDecodeAttention(plan, a, buf.get(), 1 << 16, nullptr), cudaErrorInvalidValue);
  a.spans = buf.as<KvSpan>();
  a.q_row_stride = 8 * 128 - 8;  // shorter than a packed row
  EXPECT_EQ(RunDecodeAttention(plan, a, buf.get(), 1 << 16, nullptr), cudaErrorInvalidValue);
  a.q_row_stride = 8 * 128 + 4;  // not a multiple of 8
  EXPECT_EQ(RunDecodeAttention(plan, a, buf.get(), 1 << 16, nullptr), cudaErrorInvalidValue);
  std::printf("[decode_selection/plan] rejects window, positions past the tables, null spans, "
              "bad q_row_stride PASS\n");
}

// KV-policy statistics (kernels/cuda/key_stats): the selection decode's log2-sum-exp output and
// the per-key probabilities summed over each KV head's query heads, against double references.
// Rows 0-2 are one sequence's prefill chunk read as selection rows (each row's spans a prefix
// of the sequence's kept keys: scattered survivors of an eviction, then the chunk's tokens up
// to the row), accumulating into one block; row 3 another sequence with its own block; row 4 has
// no statistics (its block must stay untouched). Both paths: the standalone pass
// (RunKeyStats, re-reading K) and the fused one (the decode kernel writes the scores,
// RunKeyStatsFromScores normalises them). Each runs twice (two "layers") onto blocks
// pre-filled with 0.5: every key must read 0.5 + 2 x reference.
TEST(DecodeSelectionGpu, LseAndKeyStatsMatchReference) {
  std::mt19937_64 rng(Seed() + 111);
  for (DType t : kDTypes) {
    for (auto [head_dim, hq, hkv, page_size] :
         {std::tuple{128, 8, 2, 16}, {64, 9, 3, 16}, {128, 32, 8, 8}, {64, 4, 4, 1}}) {
      const int D = head_dim, G = hq / hkv;
      Pool pool(t, D, hkv, page_size, 2 + (700 + 300 + 90) / page_size + 3);
      auto all = [](int64_t) { return true; };
      // Sequence A: 700 cached tokens of which a random ~40% survive, then a 3-token chunk.
      const int64_t a_len = 703, b_len = 300, c_len = 90;
      const std::vector<int32_t> ta = AllocSequence(pool, a_len, all, rng);
      const std::vector<int32_t> tb = AllocSequence(pool, b_len, all, rng);
      const std::vector<int32_t> tc = AllocSequence(pool, c_len, all, rng);
      std::bernoulli_distribution keep(0.4);
      std::vector<int64_t> a_keys;  // token indices in key order
      for (int64_t i = 0; i < 700; ++i) {
        if (i < 4 || keep(rng)) a_keys.push_back(i);
      }
      const int64_t a_kept = static_cast<int64_t>(a_keys.size());
      for (int64_t i = 700; i < a_len; ++i) a_keys.push_back(i);
      auto spans_of = [&](const std::vector<int32_t>& table, const std::vector<int64_t>& toks) {
        KvSelection sel;
        for (int64_t tok : toks) AppendTokenRange(table, page_size, tok, 1, tok, sel);
        // Merge runs (AppendTokenRange appends one span per call).
        std::vector<KvSpan> merged;
        for (const KvSpan& sp : sel.spans) {
          if (!merged.empty() && merged.back().page_id == sp.page_id &&
              merged.back().first_slot + merged.back().count == sp.first_slot &&
              merged.back().first_position + merged.back().count == sp.first_position) {
            ++merged.back().count;
          } else {
            merged.push_back(sp);
          }
        }
        sel.spans = merged;
        return sel;
      };
      SelInput in;
      std::vector<std::vector<int64_t>> row_toks;
      for (int r = 0; r < 3; ++r) {
        row_toks.emplace_back(a_keys.begin(), a_keys.begin() + a_kept + r + 1);
        in.q_pos.push_back(700 + r);
      }
      row_toks.emplace_back();
      for (int64_t i = 0; i < b_len; ++i) row_toks.back().push_back(i);
      in.q_pos.push_back(b_len - 1);
      row_toks.emplace_back();
      for (int64_t i = 0; i < c_len; ++i) row_toks.back().push_back(i);
      in.q_pos.push_back(c_len - 1);
      const std::vector<const std::vector<int32_t>*> tables = {&ta, &ta, &ta, &tb, &tc};
      std::vector<KvSpan> spans;
      std::vector<int32_t> offsets = {0}, span_keys;
      int max_spans = 1;
      for (size_t r = 0; r < row_toks.size(); ++r) {
        KvSelection sel = spans_of(*tables[r], row_toks[r]);
        int32_t key = 0;
        for (const KvSpan& sp : sel.spans) {
          spans.push_back(sp);
          span_keys.push_back(key);
          key += sp.count;
        }
        offsets.push_back(static_cast<int32_t>(spans.size()));
        max_spans = std::max(max_spans, static_cast<int>(sel.spans.size()));
        in.sels.push_back(std::move(sel));
      }
      const int64_t a_block = hkv * static_cast<int64_t>(a_keys.size());
      const std::vector<int64_t> base = {0, 0, 0, a_block, -1};
      const std::vector<int32_t> stride = {static_cast<int32_t>(a_keys.size()),
                                           static_cast<int32_t>(a_keys.size()),
                                           static_cast<int32_t>(a_keys.size()),
                                           static_cast<int32_t>(b_len), 0};
      const int64_t stats_len = a_block + hkv * b_len + 16;  // + a tail nobody owns
      const int B = static_cast<int>(row_toks.size());
      const int64_t packed = static_cast<int64_t>(hq) * D;
      std::normal_distribution<float> normal;
      std::vector<uint16_t> q(static_cast<size_t>(B) * packed);
      for (auto& e : q) e = ToBits(2.f * normal(rng), t);  // sharp enough to spread the probs
      int64_t max_pos = a_len;
      const std::vector<float> inv_freq =
          cpu::InvFrequencies(cpu::RopeParams{.head_dim = D, .theta = 10000.0});
      const RopeTablesHost tables_h = BuildRopeTables(inv_freq, max_pos);
      // Fused path: per row a [q_head][row keys] block of scores (row 4 none).
      std::vector<int64_t> scores_base;
      std::vector<int32_t> scores_stride;
      int64_t scores_len = 0;
      int max_keys = 0;
      for (int r = 0; r < B; ++r) {
        const int32_t keys = static_cast<int32_t>(row_toks[r].size());
        scores_base.push_back(base[r] < 0 ? -1 : scores_len);
        scores_stride.push_back(keys);
        if (base[r] >= 0) scores_len += static_cast<int64_t>(hq) * keys;
        max_keys = std::max<int>(max_keys, keys);
      }
      for (auto [partition_spans, fused] :
           {std::pair{0, false}, {1, false}, {0, true}, {1, true}}) {
        DecodeAttentionShape shape{.dtype = t, .head_dim = D, .num_q_heads = hq,
                                   .num_kv_heads = hkv, .batch_size = B,
                                   .page_size = page_size, .max_position = max_pos,
                                   .rope_hi_rows = tables_h.num_hi_rows, .num_sms = 132,
                                   .max_spans = max_spans, .partition_spans = partition_spans};
        DecodeAttentionPlan plan;
        CUDA_OK(PlanDecodeAttention(shape, &plan));
        DeviceBuffer dq(q.size() * 2), dout(q.size() * 2), dpages(pool.bits.size() * 2),
            dspans(spans.size() * sizeof(KvSpan)), doffs(offsets.size() * 4),
            dkeys(span_keys.size() * 4), dbase(base.size() * 8), dstride(stride.size() * 4),
            dstats(stats_len * 4), dlse(static_cast<size_t>(B) * hq * 4),
            dlo(tables_h.lo.size() * 4), dhi(tables_h.hi.size() * 4),
            dws(std::max<size_t>(plan.workspace_bytes, 16)), dscores(scores_len * 4),
            dsbase(scores_base.size() * 8), dsstride(scores_stride.size() * 4);
        ASSERT_TRUE(dscores.ok() && dsbase.ok() && dsstride.ok());
        CUDA_OK(Upload(dsbase, scores_base));
        CUDA_OK(Upload(dsstride, scores_stride));
        CUDA_OK(cudaMemset(dscores.get(), 0xFF, scores_len * 4));  // NaN: an unwritten score fails
        ASSERT_TRUE(dq.ok() && dout.ok() && dpages.ok() && dspans.ok() && doffs.ok() &&
                    dkeys.ok() && dbase.ok() && dstride.ok() && dstats.ok() && dlse.ok() &&
                    dlo.ok() && dhi.ok() && dws.ok());
        CUDA_OK(Upload(dq, q));
        CUDA_OK(Upload(dpages, pool.bits));
        CUDA_OK(cudaMemcpy(dspans.get(), spans.data(), spans.size() * sizeof(KvSpan),
                           cudaMemcpyHostToDevice));
        CUDA_OK(Upload(doffs, offsets));
        CUDA_OK(Upload(dkeys, span_keys));
        CUDA_OK(Upload(dbase, base));
        CUDA_OK(Upload(dstride, stride));
        CUDA_OK(Upload(dstats, std::vector<float>(stats_len, 0.5f)));
        CUDA_OK(Upload(dlo, tables_h.lo));
        CUDA_OK(Upload(dhi, tables_h.hi));
        CUDA_OK(cudaMemset(dlse.get(), 0xFF, static_cast<size_t>(B) * hq * 4));
        const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
        DecodeAttentionArgs args{.q = dq.get(), .out = dout.get(), .pages = dpages.get(),
                                 .page_stride = pool.page_elems, .k_offset = pool.k_offset,
                                 .v_offset = pool.v_offset, .spans = dspans.as<KvSpan>(),
                                 .span_offsets = doffs.as<int32_t>(),
                                 .rope_lo = dlo.as<float>(), .rope_hi = dhi.as<float>(),
                                 .scale = scale, .lse = dlse.as<float>()};
        if (fused) {
          args.scores = dscores.as<float>();
          args.span_keys = dkeys.as<int32_t>();
          args.scores_base = dsbase.as<int64_t>();
          args.scores_stride = dsstride.as<int32_t>();
        }
        const KeyStatsShape ks{.dtype = t, .head_dim = D, .num_q_heads = hq,
                               .num_kv_heads = hkv, .num_rows = B, .page_size = page_size,
                               .max_spans = max_spans, .rope_hi_rows = tables_h.num_hi_rows,
                               .max_keys = max_keys};
        const KeyStatsArgs ka{.q = dq.get(), .lse = dlse.as<float>(), .pages = dpages.get(),
                              .page_stride = pool.page_elems, .k_offset = pool.k_offset,
                              .spans = dspans.as<KvSpan>(), .span_offsets = doffs.as<int32_t>(),
                              .span_keys = dkeys.as<int32_t>(),
                              .stats_base = dbase.as<int64_t>(),
                              .stats_stride = dstride.as<int32_t>(), .stats = dstats.as<float>(),
                              .rope_lo = dlo.as<float>(), .rope_hi = dhi.as<float>(),
                              .scale = scale};
        const KeyStatsFromScoresArgs fa{.scores = dscores.as<float>(),
                                        .scores_base = dsbase.as<int64_t>(),
                                        .scores_stride = dsstride.as<int32_t>(),
                                        .lse = dlse.as<float>(),
                                        .stats_base = dbase.as<int64_t>(),
                                        .stats_stride = dstride.as<int32_t>(),
                                        .stats = dstats.as<float>()};
        for (int layer = 0; layer < 2; ++layer) {
          CUDA_OK(RunDecodeAttention(plan, args, dws.get(), plan.workspace_bytes, nullptr));
          CUDA_OK(fused ? RunKeyStatsFromScores(ks, fa, nullptr) : RunKeyStats(ks, ka, nullptr));
        }
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<float> lse(static_cast<size_t>(B) * hq), stats(stats_len);
        CUDA_OK(Download(lse, dlse));
        CUDA_OK(Download(stats, dstats));

        // References: per row and query head, the softmax over the row's keys in double.
        std::vector<double> ref(stats_len, 0.0);
        double lse_err = 0, stat_err = 0;
        for (int r = 0; r < B; ++r) {
          const std::vector<int32_t>& table = *tables[r];
          for (int h = 0; h < hkv; ++h) {
            std::vector<std::vector<double>> keys;
            for (int64_t tok : row_toks[r]) {
              keys.push_back(RotatedKey(pool, table[tok / page_size],
                                        static_cast<int>(tok % page_size), h, tok, inv_freq,
                                        false));
            }
            for (int g = 0; g < G; ++g) {
              const int hqi = h * G + g;
              std::vector<double> s(keys.size());
              double mx = -INFINITY;
              for (size_t j = 0; j < keys.size(); ++j) {
                double dot = 0;
                for (int d = 0; d < D; ++d) {
                  dot += FromBits(q[r * packed + hqi * D + d], t) * keys[j][d];
                }
                s[j] = dot * scale;
                mx = std::max(mx, s[j]);
              }
              double sum = 0;
              for (double v : s) sum += std::exp(v - mx);
              const double ref_lse2 = (mx + std::log(sum)) / std::log(2.0) * 1.0;
              // lse is log2 of sum 2^(s * log2 e) = (ln sum e^s) / ln 2.
              lse_err = std::max(lse_err, std::abs(lse[r * hq + hqi] - ref_lse2));
              if (base[r] < 0) continue;
              for (size_t j = 0; j < keys.size(); ++j) {
                ref[base[r] + h * stride[r] + j] += std::exp(s[j] - mx) / sum;
              }
            }
          }
        }
        int64_t bad = 0, first_bad = -1;
        for (int64_t i = 0; i < stats_len; ++i) {
          const double want = 0.5 + 2 * ref[i];
          const double err = std::abs(stats[i] - want);
          stat_err = std::max(stat_err, err);
          if (err > 2e-4 + 2e-3 * want) {
            if (first_bad < 0) first_bad = i;
            ++bad;
          }
        }
        std::printf("[decode_selection/key_stats] %s %s hd=%d hq=%d hkv=%d ps=%d parts=%d "
                    "keys=%zu max|lse err|=%.2e max|stat err|=%.2e %s\n",
                    fused ? "fused" : "standalone", DTypeName(t), D, hq, hkv, page_size,
                    plan.num_partitions, a_keys.size(),
                    lse_err, stat_err, bad == 0 && lse_err < 1e-3 ? "PASS" : "FAIL");
        EXPECT_LT(lse_err, 1e-3);
        EXPECT_EQ(bad, 0) << "first bad stat " << first_bad << " of " << stats_len;
      }
    }
  }
}

}  // namespace
}  // namespace longview::cuda
