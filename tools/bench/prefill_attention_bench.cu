// Times kernels/cuda paged prefill attention (in-kernel exact RoPE, tensor cores) at the
// ANCHORS.md prefill shapes: one sequence of T = 4k / 16k / 32k tokens prefilled at once,
// 32 query / 8 KV heads, head_dim 128, bf16, page size 16; causal dense, and a 4096-token
// sliding window with 0 and 4 sinks. CUDA events around each run (all three launches), median
// of many runs after warm-up, queries and outputs rotated over two buffers (each >= 33 MB, past
// L2). One JSON line per shape with ms and TFLOP/s; FLOPs = 4 * D * Hq * (attended query-key
// pairs): T^2/2 pairs for dense (the SDPA convention), the exact unmasked count for windows.
// tools/bench/prefill_attention_peer.py prints the same fields for SDPA and flex_attention.
//
//   prefill_attention_bench [--iters 20] [--warmup 3]
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/rope.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/prefill_attention/prefill_attention.h"
#include "tools/bench/bench_util.cuh"
#include "tools/bench/cuda_timing.h"

namespace {

using namespace longview;

// Query-key pairs a causal (window, sinks) mask keeps for one sequence of T queries.
double AttendedPairs(int T, int window, int sinks) {
  if (window <= 0) return 0.5 * T * static_cast<double>(T);  // SDPA's FLOP convention
  double pairs = 0;
  for (int t = 0; t < T; ++t) {
    pairs += std::min(t + 1, window) + std::max(0, std::min(sinks, t - window + 1));
  }
  return pairs;
}

int RunShape(int T, int window, int sinks, int iters, int warmup) {
  constexpr int kHq = 32, kHkv = 8, kD = 128, kPage = 16, kRotations = 2;
  std::mt19937 rng(4321 + T);
  const int num_pages = (T + kPage - 1) / kPage;
  const int64_t row = int64_t{kHkv} * kD;
  const int64_t page_elems = 2 * kPage * row;  // one layer: [k|v][token][kv_head][head_dim]
  const size_t q_elems = static_cast<size_t>(T) * kHq * kD;
  std::vector<int32_t> ids(num_pages);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);  // scattered pages, as after many allocations
  const std::vector<int32_t> q_start{0, T}, kv_lens{T};

  const std::vector<float> inv_freq =
      cpu::InvFrequencies(cpu::RopeParams{.head_dim = kD, .theta = 500000.0});
  const cuda::RopeTablesHost tables = cuda::BuildRopeTables(inv_freq, T - 1);
  cuda::PrefillAttentionShape shape{.dtype = cuda::DType::kBF16,
                                    .head_dim = kD,
                                    .num_q_heads = kHq,
                                    .num_kv_heads = kHkv,
                                    .batch_size = 1,
                                    .page_size = kPage,
                                    .max_total_q = T,
                                    .max_total_kv = T,
                                    .rope_hi_rows = tables.num_hi_rows,
                                    .window = window,
                                    .sinks = sinks};
  cuda::PrefillAttentionPlan plan;
  BENCH_CHECK(cuda::PlanPrefillAttention(shape, &plan));

  void *pages, *q, *out, *bt, *dqs, *dkv, *lo, *hi, *ws;
  BENCH_CHECK(cudaMalloc(&pages, num_pages * page_elems * 2));
  BENCH_CHECK(cudaMalloc(&q, q_elems * 2 * kRotations));
  BENCH_CHECK(cudaMalloc(&out, q_elems * 2 * kRotations));
  BENCH_CHECK(cudaMalloc(&bt, ids.size() * 4));
  BENCH_CHECK(cudaMalloc(&dqs, 8));
  BENCH_CHECK(cudaMalloc(&dkv, 4));
  BENCH_CHECK(cudaMalloc(&lo, tables.lo.size() * 4));
  BENCH_CHECK(cudaMalloc(&hi, tables.hi.size() * 4));
  BENCH_CHECK(cudaMalloc(&ws, plan.workspace_bytes));
  BENCH_CHECK(bench::FillRandomBf16(pages, num_pages * page_elems, 7u));
  BENCH_CHECK(bench::FillRandomBf16(q, q_elems * kRotations, 11u));
  BENCH_CHECK(cudaMemcpy(bt, ids.data(), ids.size() * 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(dqs, q_start.data(), 8, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(dkv, kv_lens.data(), 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(lo, tables.lo.data(), tables.lo.size() * 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(hi, tables.hi.data(), tables.hi.size() * 4, cudaMemcpyHostToDevice));

  auto args_for = [&](int r) {
    return cuda::PrefillAttentionArgs{.q = static_cast<uint16_t*>(q) + r * q_elems,
                                      .q_row_stride = kHq * kD,
                                      .out = static_cast<uint16_t*>(out) + r * q_elems,
                                      .pages = pages,
                                      .page_stride = page_elems,
                                      .k_offset = 0,
                                      .v_offset = kPage * row,
                                      .block_tables = static_cast<int32_t*>(bt),
                                      .block_table_stride = num_pages,
                                      .q_start = static_cast<int32_t*>(dqs),
                                      .kv_lens = static_cast<int32_t*>(dkv),
                                      .window = nullptr,
                                      .sinks = nullptr,
                                      .rope_lo = static_cast<float*>(lo),
                                      .rope_hi = static_cast<float*>(hi),
                                      .scale = 1.0f / std::sqrt(static_cast<float>(kD))};
  };
  cudaStream_t stream;
  BENCH_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::vector<float> ms;
  BENCH_CHECK(bench::TimeLaunches(
      [&](int i) {
        return cuda::RunPrefillAttention(plan, args_for(i % kRotations), ws, plan.workspace_bytes,
                                         stream);
      },
      warmup, iters, stream, &ms));
  int64_t nan_count = 0;
  BENCH_CHECK(bench::CountBf16NaNs(
      static_cast<uint16_t*>(out) + ((iters - 1) % kRotations) * q_elems, q_elems, &nan_count));
  std::sort(ms.begin(), ms.end());
  const double median_ms = ms[iters / 2];
  const double flops = 4.0 * kD * kHq * AttendedPairs(T, window, sinks);
  std::printf(
      "{\"bench\": \"prefill_attention\", \"impl\": \"longview\", \"mask\": \"%s\", \"T\": %d, "
      "\"window\": %d, \"sinks\": %d, \"num_q_heads\": %d, \"num_kv_heads\": %d, "
      "\"head_dim\": %d, \"dtype\": \"bf16\", \"page_size\": %d, \"time_ms\": %.5f, "
      "\"min_ms\": %.5f, \"tflops\": %.2f, \"iters\": %d, \"nan_outputs\": %lld, "
      "\"kernel\": \"%s\"}\n",
      window > 0 ? "sliding_window" : "causal", T, window, sinks, kHq, kHkv, kD, kPage, median_ms,
      ms[0], flops / (median_ms * 1e-3) / 1e12, iters, static_cast<long long>(nan_count),
      plan.kernel == 1 ? "wgmma" : "mma_sync");
  std::fflush(stdout);
  BENCH_CHECK(cudaStreamDestroy(stream));
  for (void* p : {pages, q, out, bt, dqs, dkv, lo, hi, ws}) BENCH_CHECK(cudaFree(p));
  return nan_count == 0 ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 20, warmup = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--warmup") == 0) warmup = std::max(0, std::atoi(argv[i + 1]));
  }
  int rc = 0;
  for (int T : {4096, 16384, 32768}) {
    rc |= RunShape(T, 0, 0, iters, warmup);
    rc |= RunShape(T, 4096, 0, iters, warmup);
    rc |= RunShape(T, 4096, 4, iters, warmup);
  }
  return rc;
}
