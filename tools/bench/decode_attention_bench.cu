// Times kernels/cuda paged decode attention (split-KV, in-kernel RoPE) at the ANCHORS.md decode
// shapes: 32 query / 8 KV heads, head_dim 128, bf16, page size 16; dense B=64 T=4k, B=64 T=32k,
// B=1 T=32k, and B=1 / B=64 at T=128k; then the selection mode with StreamingLLM's selection
// (sinks 4 + window 4096, SinkWindowSelection, pages outside it released) at B=1 / B=64,
// T=32k / 128k — the decode step that replaces the dense one at the same T. CUDA events around
// each run, median of many runs after warm-up, queries rotated over several buffers; KV read
// (>= 16.8 MB per sequence) exceeds L2 except for selection B=1. Prints one JSON line per shape
// with the achieved KV-read TB/s ("selected_keys": keys read per sequence, = kv_len when dense);
// tools/bench/decode_attention_peer.py prints the same fields for PyTorch SDPA on contiguous KV.
//
//   decode_attention_bench [--iters 100] [--warmup 10] [--only dense|selection]
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
#include "tools/bench/bench_util.cuh"
#include "tools/bench/cuda_timing.h"

namespace {

using namespace longview;

constexpr int kHq = 32, kHkv = 8, kD = 128, kPage = 16, kRotations = 4;
constexpr int kSinks = 4, kWindow = 4096;

// Selection mode (StreamingLLM) when `selection`; else dense over all kv_len keys.
int RunShape(int batch, int kv_len, bool selection, int iters, int warmup, int partition_tokens) {
  std::mt19937 rng(1234 + batch + kv_len);
  const int blocks_per_seq = (kv_len + kPage - 1) / kPage;
  const int64_t row = int64_t{kHkv} * kD;
  const int64_t page_elems = 2 * kPage * row;  // one layer: [k|v][token][kv_head][head_dim]
  const size_t q_elems = static_cast<size_t>(batch) * kHq * kD;

  // Block tables; selection: only the sinks' and the window's blocks hold pages, the rest -1.
  const int64_t q_tok = kv_len - 1;
  const int64_t win_begin = std::max<int64_t>(0, q_tok - kWindow + 1);
  auto live = [&](int64_t blk) {
    return !selection || blk * kPage < kSinks || (blk + 1) * kPage > win_begin;
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
      int64_t q_pos = 0;
      const KvSelection sel = SinkWindowSelection(
          std::span<const int32_t>(block_tables.data() + static_cast<size_t>(b) * blocks_per_seq,
                                   blocks_per_seq),
          kPage, q_tok, kSinks, kWindow, &q_pos);
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
                                     .scale = 1.0f / std::sqrt(static_cast<float>(kD))};
  };
  cudaStream_t stream;
  BENCH_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::vector<float> ms;
  BENCH_CHECK(bench::TimeLaunches(
      [&](int i) {
        return cuda::RunDecodeAttention(plan, args_for(i % kRotations), ws, plan.workspace_bytes,
                                        stream);
      },
      warmup, iters, stream, &ms));
  int64_t nan_count = 0;
  BENCH_CHECK(bench::CountBf16NaNs(
      static_cast<uint16_t*>(out) + ((iters - 1) % kRotations) * q_elems, q_elems, &nan_count));
  std::sort(ms.begin(), ms.end());
  const double median_ms = ms[iters / 2];
  const double kv_bytes = double(batch) * selected_keys * kHkv * kD * 2 /*k,v*/ * 2 /*bytes*/;
  std::printf(
      "{\"bench\": \"decode_attention\", \"impl\": \"longview\", \"mode\": \"%s\", "
      "\"batch\": %d, \"kv_len\": %d, \"selected_keys\": %lld, \"num_spans\": %d, "
      "\"num_q_heads\": %d, \"num_kv_heads\": %d, \"head_dim\": %d, \"dtype\": \"bf16\", "
      "\"page_size\": %d, \"time_ms\": %.5f, \"min_ms\": %.5f, \"kv_tbps\": %.4f, "
      "\"partitions\": %d, \"partition_tokens\": %d, \"partition_spans\": %d, \"iters\": %d, "
      "\"nan_outputs\": %lld}\n",
      selection ? "selection" : "dense", batch, kv_len, static_cast<long long>(selected_keys),
      max_spans, kHq, kHkv, kD, kPage, median_ms, ms[0], kv_bytes / (median_ms * 1e-3) / 1e12,
      plan.num_partitions, plan.partition_tokens, plan.partition_spans, iters,
      static_cast<long long>(nan_count));
  std::fflush(stdout);
  BENCH_CHECK(cudaStreamDestroy(stream));
  for (void* p : {pages, q, out, bt, dlens, lo, hi, dspans, doffs, ws}) {
    if (p != nullptr) BENCH_CHECK(cudaFree(p));
  }
  return nan_count == 0 ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 100, warmup = 10, partition_tokens = 0;
  bool dense = true, selection = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--warmup") == 0) warmup = std::max(0, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--partition-tokens") == 0) {
      partition_tokens = std::max(0, std::atoi(argv[i + 1]));
    }
    if (std::strcmp(argv[i], "--only") == 0) {
      dense = std::strcmp(argv[i + 1], "dense") == 0;
      selection = std::strcmp(argv[i + 1], "selection") == 0;
    }
  }
  int rc = 0;
  if (dense) {
    for (auto [b, t] : {std::pair{64, 4096}, {64, 32768}, {1, 32768}, {1, 131072}, {64, 131072}}) {
      rc |= RunShape(b, t, /*selection=*/false, iters, warmup, partition_tokens);
    }
  }
  if (selection) {
    for (auto [b, t] : {std::pair{1, 32768}, {64, 32768}, {1, 131072}, {64, 131072}}) {
      rc |= RunShape(b, t, /*selection=*/true, iters, warmup, 0);
    }
  }
  return rc;
}
