// Times kernels/cuda paged decode attention (split-KV, in-kernel RoPE) at the ANCHORS.md decode
// shapes: 32 query / 8 KV heads, head_dim 128, bf16, page size 16; dense B=64 T=4k, B=64 T=32k,
// B=1 T=32k, and B=1 / B=64 at T=128k; then the selection mode with StreamingLLM's selection
// (sinks 4 + window 4096, SinkWindowSelection, pages outside it released) at B=1 / B=64,
// T=32k / 128k — the decode step that replaces the dense one at the same T. CUDA events around
// each run, median of many runs after warm-up, queries rotated over several buffers; KV read
// (>= 16.8 MB per sequence) exceeds L2 except for selection B=1. Prints one JSON line per shape
// with the achieved KV-read TB/s ("selected_keys": keys read per sequence, = kv_len when dense);
// tools/bench/decode_attention_peer.py prints the same fields for PyTorch SDPA on contiguous KV.
// Mode "policy" (KV eviction policies, issue 14) times the selection kernel over a policy's
// selection of every key at its own position (DenseSelection: what a policy under budget reads)
// at B=64 / B=1, T=32k, alone and then with the per-key statistics a policy asks for
// (kernels/cuda/key_stats: fused, the kernel writing its scores and log-sum-exps then one
// normalising kernel; standalone, a second pass over K), and prints the statistics' cost.
//
//   decode_attention_bench [--iters 100] [--warmup 10] [--only dense|selection|policy]
//                          [--partition-tokens N]   (dense: keys per partition; 0 = planner's)
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <span>
#include <vector>

#include "kernels/kv_selection.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/decode_attention/decode_attention.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/key_stats/key_stats.h"
#include "tools/bench/bench_util.cuh"
#include "tools/bench/cuda_timing.h"

namespace {

using namespace longview;

constexpr int kHq = 32, kHkv = 8, kD = 128, kPage = 16, kRotations = 4;
constexpr int kSinks = 4, kWindow = 4096;

enum class Mode { kDense, kSelection, kPolicy };

// Selection mode (StreamingLLM) for kSelection, every key as a selection for kPolicy (with the
// per-key statistics when `stats`: 1 standalone, 2 fused); else dense over all kv_len keys.
// *time_ms: the median.
int RunShape(int batch, int kv_len, Mode mode, int iters, int warmup, int partition_tokens,
             int stats = 0, double* time_ms = nullptr) {
  const bool selection = mode != Mode::kDense;
  std::mt19937 rng(1234 + batch + kv_len);
  const int blocks_per_seq = (kv_len + kPage - 1) / kPage;
  const int64_t row = int64_t{kHkv} * kD;
  const int64_t page_elems = 2 * kPage * row;  // one layer: [k|v][token][kv_head][head_dim]
  const size_t q_elems = static_cast<size_t>(batch) * kHq * kD;

  // Block tables; selection: only the sinks' and the window's blocks hold pages, the rest -1.
  const int64_t q_tok = kv_len - 1;
  const int64_t win_begin = std::max<int64_t>(0, q_tok - kWindow + 1);
  auto live = [&](int64_t blk) {
    return mode != Mode::kSelection || blk * kPage < kSinks || (blk + 1) * kPage > win_begin;
  };
  int64_t live_per_seq = 0;
  for (int64_t blk = 0; blk < blocks_per_seq; ++blk) live_per_seq += live(blk) ? 1 : 0;
  const int64_t num_pages = static_cast<int64_t>(batch) * live_per_seq;
  std::vector<int32_t> ids(num_pages);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);  // scattered pages, as after many allocations
  std::vector<int32_t> block_tables(static_cast<size_t>(batch) * blocks_per_seq, -1);
  size_t next = 0;
  for (int b = 0; b < batch; ++b) {
    for (int64_t blk = 0; blk < blocks_per_seq; ++blk) {
      if (live(blk)) block_tables[static_cast<size_t>(b) * blocks_per_seq + blk] = ids[next++];
    }
  }
  std::vector<int32_t> lens(batch, kv_len);
  std::vector<KvSpan> spans;
  std::vector<int32_t> span_offsets(1, 0);
  int max_spans = 0;
  int64_t selected_keys = kv_len, max_position = kv_len - 1;
  if (selection) {
    for (int b = 0; b < batch; ++b) {
      int64_t q_pos = q_tok;
      const std::span<const int32_t> table(
          block_tables.data() + static_cast<size_t>(b) * blocks_per_seq, blocks_per_seq);
      const KvSelection sel = mode == Mode::kPolicy
                                  ? DenseSelection(table, kPage, kv_len)
                                  : SinkWindowSelection(table, kPage, q_tok, kSinks, kWindow,
                                                        &q_pos);
      spans.insert(spans.end(), sel.spans.begin(), sel.spans.end());
      span_offsets.push_back(static_cast<int32_t>(spans.size()));
      max_spans = std::max(max_spans, static_cast<int>(sel.spans.size()));
      selected_keys = sel.NumKeys(0);
      max_position = q_pos;
    }
  }

  const std::vector<float> inv_freq =
      cpu::InvFrequencies(cpu::RopeParams{.head_dim = kD, .theta = 500000.0});
  const cuda::RopeTablesHost tables = cuda::BuildRopeTables(inv_freq, max_position);

  cuda::DecodeAttentionShape shape{.dtype = cuda::DType::kBF16,
                                   .head_dim = kD,
                                   .num_q_heads = kHq,
                                   .num_kv_heads = kHkv,
                                   .batch_size = batch,
                                   .page_size = kPage,
                                   .max_kv_len = selection ? 0 : kv_len,
                                   .max_position = max_position,
                                   .rope_hi_rows = tables.num_hi_rows,
                                   .partition_tokens = selection ? 0 : partition_tokens,
                                   .max_spans = max_spans};
  cuda::DecodeAttentionPlan plan;
  BENCH_CHECK(cuda::PlanDecodeAttention(shape, &plan));

  void *pages, *q, *out, *bt, *dlens, *lo, *hi, *dspans = nullptr, *doffs = nullptr, *ws = nullptr;
  BENCH_CHECK(cudaMalloc(&pages, num_pages * page_elems * 2));
  BENCH_CHECK(cudaMalloc(&q, q_elems * 2 * kRotations));
  BENCH_CHECK(cudaMalloc(&out, q_elems * 2 * kRotations));
  BENCH_CHECK(cudaMalloc(&bt, block_tables.size() * 4));
  BENCH_CHECK(cudaMalloc(&dlens, lens.size() * 4));
  BENCH_CHECK(cudaMalloc(&lo, tables.lo.size() * 4));
  BENCH_CHECK(cudaMalloc(&hi, tables.hi.size() * 4));
  if (selection) {
    BENCH_CHECK(cudaMalloc(&dspans, spans.size() * sizeof(KvSpan)));
    BENCH_CHECK(cudaMalloc(&doffs, span_offsets.size() * 4));
    BENCH_CHECK(cudaMemcpy(dspans, spans.data(), spans.size() * sizeof(KvSpan),
                           cudaMemcpyHostToDevice));
    BENCH_CHECK(
        cudaMemcpy(doffs, span_offsets.data(), span_offsets.size() * 4, cudaMemcpyHostToDevice));
  }
  if (plan.workspace_bytes > 0) BENCH_CHECK(cudaMalloc(&ws, plan.workspace_bytes));
  // Statistics: per row and query head the log-sum-exp, one block of [kv_head][keys] per row.
  void *lse = nullptr, *span_keys = nullptr, *stats_base = nullptr, *stats_stride = nullptr,
       *key_stats = nullptr, *scores = nullptr, *scores_base = nullptr;
  if (stats > 0) {
    std::vector<int32_t> keys;
    for (int b = 0; b < batch; ++b) {
      int32_t k = 0;
      for (int32_t i = span_offsets[b]; i < span_offsets[b + 1]; ++i) {
        keys.push_back(k);
        k += spans[i].count;
      }
    }
    std::vector<int64_t> base(batch);
    std::vector<int32_t> stride(batch, static_cast<int32_t>(selected_keys));
    for (int b = 0; b < batch; ++b) base[b] = int64_t{b} * kHkv * selected_keys;
    BENCH_CHECK(cudaMalloc(&lse, size_t{4} * batch * kHq));
    BENCH_CHECK(cudaMalloc(&span_keys, keys.size() * 4));
    BENCH_CHECK(cudaMalloc(&stats_base, base.size() * 8));
    BENCH_CHECK(cudaMalloc(&stats_stride, stride.size() * 4));
    BENCH_CHECK(cudaMalloc(&key_stats, size_t{4} * batch * kHkv * selected_keys));
    BENCH_CHECK(cudaMemcpy(span_keys, keys.data(), keys.size() * 4, cudaMemcpyHostToDevice));
    BENCH_CHECK(cudaMemcpy(stats_base, base.data(), base.size() * 8, cudaMemcpyHostToDevice));
    BENCH_CHECK(
        cudaMemcpy(stats_stride, stride.data(), stride.size() * 4, cudaMemcpyHostToDevice));
    BENCH_CHECK(cudaMemset(key_stats, 0, size_t{4} * batch * kHkv * selected_keys));
    if (stats == 2) {  // per row [q_head][keys]; strides equal the stats blocks'
      std::vector<int64_t> sbase(batch);
      for (int b = 0; b < batch; ++b) sbase[b] = int64_t{b} * kHq * selected_keys;
      BENCH_CHECK(cudaMalloc(&scores, size_t{4} * batch * kHq * selected_keys));
      BENCH_CHECK(cudaMalloc(&scores_base, sbase.size() * 8));
      BENCH_CHECK(cudaMemcpy(scores_base, sbase.data(), sbase.size() * 8, cudaMemcpyHostToDevice));
    }
  }
  BENCH_CHECK(bench::FillRandomBf16(static_cast<uint16_t*>(pages), num_pages * page_elems, 7u));
  BENCH_CHECK(bench::FillRandomBf16(static_cast<uint16_t*>(q), q_elems * kRotations, 11u));
  BENCH_CHECK(cudaMemcpy(bt, block_tables.data(), block_tables.size() * 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(dlens, lens.data(), lens.size() * 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(lo, tables.lo.data(), tables.lo.size() * 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(hi, tables.hi.data(), tables.hi.size() * 4, cudaMemcpyHostToDevice));

  auto args_for = [&](int r) {
    return cuda::DecodeAttentionArgs{.q = static_cast<uint16_t*>(q) + r * q_elems,
                                     .out = static_cast<uint16_t*>(out) + r * q_elems,
                                     .pages = pages,
                                     .page_stride = page_elems,
                                     .k_offset = 0,
                                     .v_offset = kPage * row,
                                     .block_tables = static_cast<int32_t*>(bt),
                                     .block_table_stride = blocks_per_seq,
                                     .kv_lens = static_cast<int32_t*>(dlens),
                                     .pos_start = nullptr,
                                     .spans = static_cast<const KvSpan*>(dspans),
                                     .span_offsets = static_cast<const int32_t*>(doffs),
                                     .rope_lo = static_cast<float*>(lo),
                                     .rope_hi = static_cast<float*>(hi),
                                     .scale = 1.0f / std::sqrt(static_cast<float>(kD)),
                                     .lse = static_cast<float*>(lse),
                                     .scores = static_cast<float*>(scores),
                                     .span_keys = static_cast<const int32_t*>(span_keys),
                                     .scores_base = static_cast<const int64_t*>(scores_base),
                                     .scores_stride = static_cast<const int32_t*>(stats_stride)};
  };
  const cuda::KeyStatsShape stats_shape{.dtype = cuda::DType::kBF16,
                                        .head_dim = kD,
                                        .num_q_heads = kHq,
                                        .num_kv_heads = kHkv,
                                        .num_rows = batch,
                                        .page_size = kPage,
                                        .max_spans = max_spans,
                                        .rope_hi_rows = tables.num_hi_rows,
                                        .max_keys = static_cast<int>(selected_keys)};
  const cuda::KeyStatsFromScoresArgs fused_args{
      .scores = static_cast<float*>(scores),
      .scores_base = static_cast<const int64_t*>(scores_base),
      .scores_stride = static_cast<const int32_t*>(stats_stride),
      .lse = static_cast<float*>(lse),
      .stats_base = static_cast<const int64_t*>(stats_base),
      .stats_stride = static_cast<const int32_t*>(stats_stride),
      .stats = static_cast<float*>(key_stats)};
  auto stats_args_for = [&](int r) {
    return cuda::KeyStatsArgs{.q = static_cast<uint16_t*>(q) + r * q_elems,
                              .lse = static_cast<float*>(lse),
                              .pages = pages,
                              .page_stride = page_elems,
                              .k_offset = 0,
                              .spans = static_cast<const KvSpan*>(dspans),
                              .span_offsets = static_cast<const int32_t*>(doffs),
                              .span_keys = static_cast<const int32_t*>(span_keys),
                              .stats_base = static_cast<const int64_t*>(stats_base),
                              .stats_stride = static_cast<const int32_t*>(stats_stride),
                              .stats = static_cast<float*>(key_stats),
                              .rope_lo = static_cast<float*>(lo),
                              .rope_hi = static_cast<float*>(hi),
                              .scale = 1.0f / std::sqrt(static_cast<float>(kD))};
  };
  cudaStream_t stream;
  BENCH_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::vector<float> ms;
  BENCH_CHECK(bench::TimeLaunches(
      [&](int i) {
        const cudaError_t e = cuda::RunDecodeAttention(plan, args_for(i % kRotations), ws,
                                                       plan.workspace_bytes, stream);
        if (e != cudaSuccess || stats == 0) return e;
        if (stats == 2) return cuda::RunKeyStatsFromScores(stats_shape, fused_args, stream);
        return cuda::RunKeyStats(stats_shape, stats_args_for(i % kRotations), stream);
      },
      warmup, iters, stream, &ms));
  int64_t nan_count = 0;
  BENCH_CHECK(bench::CountBf16NaNs(
      static_cast<uint16_t*>(out) + ((iters - 1) % kRotations) * q_elems, q_elems, &nan_count));
  std::sort(ms.begin(), ms.end());
  const double median_ms = ms[iters / 2];
  if (time_ms != nullptr) *time_ms = median_ms;
  const double kv_bytes = double(batch) * selected_keys * kHkv * kD * 2 /*k,v*/ * 2 /*bytes*/;
  std::printf(
      "{\"bench\": \"decode_attention\", \"impl\": \"longview\", \"mode\": \"%s%s\", "
      "\"batch\": %d, \"kv_len\": %d, \"selected_keys\": %lld, \"num_spans\": %d, "
      "\"num_q_heads\": %d, \"num_kv_heads\": %d, \"head_dim\": %d, \"dtype\": \"bf16\", "
      "\"page_size\": %d, \"time_ms\": %.5f, \"min_ms\": %.5f, \"kv_tbps\": %.4f, "
      "\"partitions\": %d, \"partition_tokens\": %d, \"partition_spans\": %d, \"iters\": %d, "
      "\"nan_outputs\": %lld}\n",
      mode == Mode::kDense ? "dense" : mode == Mode::kSelection ? "selection" : "policy",
      stats == 2 ? "+stats_fused" : stats == 1 ? "+stats_standalone" : "", batch, kv_len, static_cast<long long>(selected_keys),
      max_spans, kHq, kHkv, kD, kPage, median_ms, ms[0], kv_bytes / (median_ms * 1e-3) / 1e12,
      plan.num_partitions, plan.partition_tokens, plan.partition_spans, iters,
      static_cast<long long>(nan_count));
  std::fflush(stdout);
  BENCH_CHECK(cudaStreamDestroy(stream));
  for (void* p : {pages, q, out, bt, dlens, lo, hi, dspans, doffs, ws, lse, span_keys,
                  stats_base, stats_stride, key_stats, scores, scores_base}) {
    if (p != nullptr) BENCH_CHECK(cudaFree(p));
  }
  return nan_count == 0 ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 100, warmup = 10, partition_tokens = 0;
  bool dense = true, selection = true, policy = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--warmup") == 0) warmup = std::max(0, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--partition-tokens") == 0) {
      partition_tokens = std::max(0, std::atoi(argv[i + 1]));
    }
    if (std::strcmp(argv[i], "--only") == 0) {
      dense = std::strcmp(argv[i + 1], "dense") == 0;
      selection = std::strcmp(argv[i + 1], "selection") == 0;
      policy = std::strcmp(argv[i + 1], "policy") == 0;
    }
  }
  int rc = 0;
  if (dense) {
    for (auto [b, t] : {std::pair{64, 4096}, {64, 32768}, {1, 32768}, {1, 131072}, {64, 131072}}) {
      rc |= RunShape(b, t, Mode::kDense, iters, warmup, partition_tokens);
    }
  }
  if (selection) {
    for (auto [b, t] : {std::pair{1, 32768}, {64, 32768}, {1, 131072}, {64, 131072}}) {
      rc |= RunShape(b, t, Mode::kSelection, iters, warmup, 0);
    }
  }
  if (policy) {
    for (auto [b, t] : {std::pair{64, 32768}, {1, 32768}, {64, 4096}}) {
      double plain = 0, standalone = 0, fused = 0;
      rc |= RunShape(b, t, Mode::kPolicy, iters, warmup, 0, 0, &plain);
      rc |= RunShape(b, t, Mode::kPolicy, iters, warmup, 0, 1, &standalone);
      rc |= RunShape(b, t, Mode::kPolicy, iters, warmup, 0, 2, &fused);
      std::printf("{\"bench\": \"key_stats_cost\", \"batch\": %d, \"kv_len\": %d, "
                  "\"attention_ms\": %.5f, \"fused_ms\": %.5f, \"standalone_ms\": %.5f, "
                  "\"fused_cost\": %.4f, \"standalone_cost\": %.4f}\n",
                  b, t, plain, fused, standalone, fused / plain - 1.0, standalone / plain - 1.0);
      std::fflush(stdout);
    }
  }
  return rc;
}
