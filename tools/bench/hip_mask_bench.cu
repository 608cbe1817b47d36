// HiP decode attention at long contexts (issue 15): what one pruned layer's decode step costs with
// v1.2's parameters against dense decode attention at the same context, Llama-3-8B shape (32
// query / 8 KV heads, head_dim 128, bf16, page size 16), one layer's KV.
//
// Per (batch, T): dense decode attention over all T keys (kernels/cuda/decode_attention, dense
// mode); HiP's three pruning stages on the GPU (kernels/cuda/hip_mask: chunks 256 / 32 / 8 keeping
// 32768 / 8192 / 2048 of the middle between 256 sinks and the masking window, relative RoPE), each
// timed alone on its real input (the previous stage's output) and as one chain; the spans of
// what a row then reads, built on the device (RunHipSpans: sinks + the 2,048 kept tokens + the
// 1,024-token window), and the selection decode attention over them. A step's cost amortised
// over the refresh intervals [32, 16, 8] (stage i recomputed every refresh[i] steps, its later
// stages with it; the spans every step, as the window moves) is
//   hip_ms = spans_ms + selection_ms + stage0_ms / 32 + stage1_ms / 16 + stage2_ms / 8,
// and the figure against dense is dense_ms / hip_ms (InfiniteHiP reports 18.95x at 1M against
// FlashAttention). "every_step_ms" is the cost if every step recomputed every stage. Each shape
// runs a pruned layer ("layer": "pruned") and a "dense" one ("dense_layer": top-k 4,096 and
// chunk-indexed RoPE, v1.2's layers 0-3), then "hip_decode_model" weighs them as Llama-3-8B's 32
// layers (4 dense) against dense attention on every layer; "hip_decode_graph" times the same
// launches captured as CUDA graphs (the every-step spans + selection attention, each stage;
// dense attention too), as the engine runs decode steps; its ratio is graph against graph. CUDA events,
// median of `iters` runs after warm-up. Prints one JSON line per shape; the PyTorch peer is
// decode_attention_peer.py --shapes (SDPA dense on contiguous KV, same run).
//
// "hip_prefill_pruning" (RunPrefillPruning) times the pruning of a whole prompt's query blocks.
//
//   hip_mask_bench [--iters 50] [--warmup 5] [--shapes 1x131072,1x524288,1x1048576,8x131072]
//                  [--prefill 32768,65536,131072 | none]
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
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/rope.h"
#include "kernels/cuda/decode_attention/decode_attention.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/hip_mask/hip_mask.h"
#include "kernels/hip_stage.h"
#include "kernels/kv_selection.h"
#include "tools/bench/bench_util.cuh"
#include "tools/bench/cuda_timing.h"

namespace {

using namespace longview;

constexpr int kHq = 32, kHkv = 8, kD = 128, kPage = 16;
constexpr int kSinks = 256, kWindow = 1024;
constexpr int kRefresh[3] = {32, 16, 8};
constexpr HipStage kStages[3] = {{256, 32768, 1}, {32, 8192, 1}, {8, 2048, 1}};
constexpr int kDenseTopK = 4096, kLayers = 32, kDenseLayers = 4;  // v1.2 on Llama-3-8B

double Median(std::vector<float> ms) {
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Each stage's capacity (chunks after its cut) and its input's (ranges), from stage 0's chunk
// count: every later stage receives at most keep / chunk of the one before, each re-cut.
void StageCapacities(int stage0_chunks, int capacity[3], int in_capacity[3]) {
  in_capacity[0] = 1;
  capacity[0] = stage0_chunks;
  for (int s = 1; s < 3; ++s) {
    in_capacity[s] = capacity[s - 1];
    capacity[s] = static_cast<int>(kStages[s - 1].keep / kStages[s - 1].chunk *
                                   ((kStages[s - 1].chunk + kStages[s].chunk - 1) / kStages[s].chunk));
  }
}

// Stage 0's input on the device: one range (the block's middle) per block.
int UploadMiddles(const std::vector<cuda::HipChunk>& middles, void** ranges, void** counts) {
  const size_t n = middles.size();
  BENCH_CHECK(cudaMalloc(ranges, n * sizeof(cuda::HipChunk)));
  BENCH_CHECK(cudaMemcpy(*ranges, middles.data(), n * sizeof(cuda::HipChunk), cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMalloc(counts, n * 4));
  const std::vector<int32_t> ones(n, 1);
  BENCH_CHECK(cudaMemcpy(*counts, ones.data(), n * 4, cudaMemcpyHostToDevice));
  return 0;
}

int RunShape(int batch, int kv_len, int iters, int warmup) {
  std::mt19937 rng(4321 + batch + kv_len);
  const int blocks_per_seq = (kv_len + kPage - 1) / kPage;
  const int64_t row = int64_t{kHkv} * kD;
  const int64_t page_elems = 2 * kPage * row;  // one layer: [k|v][token][kv_head][head_dim]
  const int64_t num_pages = int64_t{batch} * blocks_per_seq;
  std::vector<int32_t> ids(num_pages);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  const std::vector<int32_t>& block_tables = ids;  // [batch][blocks_per_seq]
  const int64_t q_tok = kv_len - 1;
  // HipMiddle for the decode row at q_tok: after the sinks, up to the masking window (the window
  // less the first stage's chunk) before the row.
  const int middle_end = static_cast<int>(q_tok + 1 - (kWindow - kStages[0].chunk));

  const std::vector<float> inv_freq =
      cpu::InvFrequencies(cpu::RopeParams{.head_dim = kD, .theta = 500000.0});
  const cuda::RopeTablesHost tables = cuda::BuildRopeTables(inv_freq, kv_len + 1);

  const size_t q_elems = static_cast<size_t>(batch) * kHq * kD;
  std::vector<float> qf(q_elems);
  std::normal_distribution<float> normal;
  for (float& x : qf) x = normal(rng);

  void *pages, *q, *qf_dev, *out, *bt, *dlens, *lo, *hi;
  BENCH_CHECK(cudaMalloc(&pages, num_pages * page_elems * 2));
  BENCH_CHECK(cudaMalloc(&q, q_elems * 2));
  BENCH_CHECK(cudaMalloc(&qf_dev, q_elems * 4));
  BENCH_CHECK(cudaMalloc(&out, q_elems * 2));
  BENCH_CHECK(cudaMalloc(&bt, block_tables.size() * 4));
  BENCH_CHECK(cudaMalloc(&dlens, batch * 4));
  BENCH_CHECK(cudaMalloc(&lo, tables.lo.size() * 4));
  BENCH_CHECK(cudaMalloc(&hi, tables.hi.size() * 4));
  BENCH_CHECK(bench::FillRandomBf16(static_cast<uint16_t*>(pages), num_pages * page_elems, 7u));
  BENCH_CHECK(bench::FillRandomBf16(static_cast<uint16_t*>(q), q_elems, 11u));
  BENCH_CHECK(cudaMemcpy(qf_dev, qf.data(), q_elems * 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(bt, block_tables.data(), block_tables.size() * 4, cudaMemcpyHostToDevice));
  const std::vector<int32_t> lens(batch, kv_len);
  BENCH_CHECK(cudaMemcpy(dlens, lens.data(), batch * 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(lo, tables.lo.data(), tables.lo.size() * 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(hi, tables.hi.data(), tables.hi.size() * 4, cudaMemcpyHostToDevice));
  cudaStream_t stream;
  BENCH_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const float scale = 1.0f / std::sqrt(static_cast<float>(kD));

  // Dense decode attention over every key.
  cuda::DecodeAttentionShape dshape{.dtype = cuda::DType::kBF16, .head_dim = kD,
                                    .num_q_heads = kHq, .num_kv_heads = kHkv,
                                    .batch_size = batch, .page_size = kPage,
                                    .max_kv_len = kv_len, .max_position = kv_len - 1,
                                    .rope_hi_rows = tables.num_hi_rows};
  cuda::DecodeAttentionPlan dplan;
  BENCH_CHECK(cuda::PlanDecodeAttention(dshape, &dplan));
  void* dws = nullptr;
  if (dplan.workspace_bytes > 0) BENCH_CHECK(cudaMalloc(&dws, dplan.workspace_bytes));
  const cuda::DecodeAttentionArgs dargs{.q = q, .out = out, .pages = pages,
                                        .page_stride = page_elems, .k_offset = 0,
                                        .v_offset = kPage * row,
                                        .block_tables = static_cast<int32_t*>(bt),
                                        .block_table_stride = blocks_per_seq,
                                        .kv_lens = static_cast<int32_t*>(dlens),
                                        .rope_lo = static_cast<float*>(lo),
                                        .rope_hi = static_cast<float*>(hi), .scale = scale};
  std::vector<float> ms;
  BENCH_CHECK(bench::TimeLaunches(
      [&](int) { return cuda::RunDecodeAttention(dplan, dargs, dws, dplan.workspace_bytes, stream); },
      warmup, iters, stream, &ms));
  const double dense_ms = Median(ms);

  // HiP on a pruned layer, then on a "dense" layer (v1.2: top-k 4,096 in the last stage and
  // chunk-indexed RoPE while pruning, the decode row at its own position; the chunk count of
  // stage 0 from the context, here kv_len).
  const int first_stage_chunks =
      static_cast<int>((kv_len - kSinks - kWindow + kStages[0].chunk - 1) / kStages[0].chunk);
  const std::vector<int32_t> first_pos(batch, static_cast<int32_t>(q_tok));
  void* dfirst;
  BENCH_CHECK(cudaMalloc(&dfirst, batch * 4));
  BENCH_CHECK(cudaMemcpy(dfirst, first_pos.data(), batch * 4, cudaMemcpyHostToDevice));
  double layer_ms[2] = {0, 0}, graph_layer_ms[2] = {0, 0}, graph_dense_ms = 0;
  int64_t total_nans = 0;
  for (int variant = 0; variant < 2; ++variant) {
    const bool dense_layer = variant == 1;
    HipStage stages[3] = {kStages[0], kStages[1], kStages[2]};
    if (dense_layer) stages[2].keep = kDenseTopK;
    // The stages: capacities from the stage sizes (every stage prunes at these contexts).
    int capacity[3], in_capacity[3];
    StageCapacities((middle_end - kSinks + kStages[0].chunk - 1) / kStages[0].chunk, capacity,
                    in_capacity);
    void *ranges[4], *counts[4], *ws[3];
    if (UploadMiddles(std::vector<cuda::HipChunk>(batch, cuda::HipChunk{kSinks, middle_end}),
                      &ranges[0], &counts[0]) != 0) {
      return 1;
    }
    cuda::HipStageShape shapes[3];
    cuda::HipStageArgs args[3];
    for (int s = 0; s < 3; ++s) {
      shapes[s] = cuda::HipStageShape{.dtype = cuda::DType::kBF16, .head_dim = kD,
                                      .num_q_heads = kHq, .num_kv_heads = kHkv,
                                      .page_size = kPage, .num_blocks = batch, .num_queries = 1,
                                      .max_ranges = in_capacity[s], .max_chunks = capacity[s],
                                      .rope_hi_rows = tables.num_hi_rows,
                                      .chunk = static_cast<int>(stages[s].chunk),
                                      .keep = static_cast<int>(stages[s].keep),
                                      .chunk_indexed = dense_layer,
                                      .query_position = kWindow - static_cast<int>(stages[0].chunk) + 1,
                                      .query_stride = 1,
                                      .scan_window = kWindow - static_cast<int>(stages[0].chunk),
                                      .scan_chunks = static_cast<int>(
                                          s == 0 ? first_stage_chunks
                                                 : stages[s - 1].keep / stages[s].chunk)};
      BENCH_CHECK(cudaMalloc(&ranges[s + 1], size_t{8} * batch * capacity[s]));
      BENCH_CHECK(cudaMalloc(&counts[s + 1], batch * 4));
      BENCH_CHECK(cudaMalloc(&ws[s], cuda::HipStageWorkspaceBytes(shapes[s])));
      args[s] = cuda::HipStageArgs{.q = static_cast<float*>(qf_dev),
                                   .first_query_position = static_cast<int32_t*>(dfirst),
                                   .pages = pages,
                                   .page_stride = page_elems, .k_offset = 0,
                                   .block_tables = static_cast<int32_t*>(bt),
                                   .block_table_stride = blocks_per_seq,
                                   .in_ranges = static_cast<cuda::HipChunk*>(ranges[s]),
                                   .in_count = static_cast<int32_t*>(counts[s]),
                                   .out_ranges = static_cast<cuda::HipChunk*>(ranges[s + 1]),
                                   .out_count = static_cast<int32_t*>(counts[s + 1]),
                                   .rope_lo = static_cast<float*>(lo),
                                   .rope_hi = static_cast<float*>(hi), .workspace = ws[s]};
    }
    auto chain = [&]() {
      for (int s = 0; s < 3; ++s) {
        if (cudaError_t e = cuda::RunHipStage(shapes[s], args[s], stream); e != cudaSuccess) return e;
      }
      return cudaSuccess;
    };
    BENCH_CHECK(chain());
    BENCH_CHECK(cudaStreamSynchronize(stream));
    double stage_ms[3];
    for (int s = 0; s < 3; ++s) {
      BENCH_CHECK(bench::TimeLaunches([&](int) { return cuda::RunHipStage(shapes[s], args[s], stream); },
                                      warmup, iters, stream, &ms));
      stage_ms[s] = Median(ms);
    }
    BENCH_CHECK(bench::TimeLaunches([&](int) { return chain(); }, warmup, iters, stream, &ms));
    const double chain_ms = Median(ms);

    // What each row reads, built on the device (RunHipSpans): sinks, the kept chunks below the
    // window, the window up to the row; the bound on spans from the sizes (2,048 kept tokens in
    // chunks of 8: at most 2 spans each; the sinks' and the window's pages).
    const int max_spans = 2 * static_cast<int>(stages[2].keep / stages[2].chunk) +
                          (kSinks + kPage - 1) / kPage + kWindow / kPage + 2;
    const cuda::HipSpansShape pshape{.page_size = kPage, .num_rows = batch,
                                     .max_kept = capacity[2], .max_spans = max_spans};
    const std::vector<int32_t> tokens(batch, static_cast<int32_t>(q_tok)),
        sinks_v(batch, kSinks), window_v(batch, kWindow);
    void *dtok, *dsinks, *dwin, *dspans, *doffs, *pws;
    BENCH_CHECK(cudaMalloc(&dtok, batch * 4));
    BENCH_CHECK(cudaMalloc(&dsinks, batch * 4));
    BENCH_CHECK(cudaMalloc(&dwin, batch * 4));
    BENCH_CHECK(cudaMalloc(&dspans, static_cast<size_t>(batch) * (max_spans + 1) * sizeof(KvSpan)));
    BENCH_CHECK(cudaMalloc(&doffs, (batch + 1) * 4));
    BENCH_CHECK(cudaMalloc(&pws, cuda::HipSpansWorkspaceBytes(pshape)));
    BENCH_CHECK(cudaMemcpy(dtok, tokens.data(), batch * 4, cudaMemcpyHostToDevice));
    BENCH_CHECK(cudaMemcpy(dsinks, sinks_v.data(), batch * 4, cudaMemcpyHostToDevice));
    BENCH_CHECK(cudaMemcpy(dwin, window_v.data(), batch * 4, cudaMemcpyHostToDevice));
    const cuda::HipSpansArgs pargs{.kept = static_cast<cuda::HipChunk*>(ranges[3]),
                                   .kept_count = static_cast<int32_t*>(counts[3]),
                                   .block_tables = static_cast<int32_t*>(bt),
                                   .block_table_stride = blocks_per_seq,
                                   .token = static_cast<int32_t*>(dtok),
                                   .sinks = static_cast<int32_t*>(dsinks),
                                   .window = static_cast<int32_t*>(dwin),
                                   .spans = static_cast<KvSpan*>(dspans),
                                   .span_offsets = static_cast<int32_t*>(doffs),
                                   .workspace = pws};
    BENCH_CHECK(bench::TimeLaunches([&](int) { return cuda::RunHipSpans(pshape, pargs, stream); },
                                    warmup, iters, stream, &ms));
    const double spans_ms = Median(ms);
    std::vector<int32_t> offsets(batch + 1);
    std::vector<int32_t> kept_count(batch);
    BENCH_CHECK(cudaMemcpy(offsets.data(), doffs, (batch + 1) * 4, cudaMemcpyDeviceToHost));
    BENCH_CHECK(cudaMemcpy(kept_count.data(), counts[3], batch * 4, cudaMemcpyDeviceToHost));
    std::vector<KvSpan> row0(offsets[1]);
    BENCH_CHECK(cudaMemcpy(row0.data(), dspans, row0.size() * sizeof(KvSpan), cudaMemcpyDeviceToHost));
    int64_t selected = 0;
    for (const KvSpan& sp : row0) selected += sp.count;
    const int64_t kept_tokens = selected - kSinks - kWindow;
    cuda::DecodeAttentionShape sshape = dshape;
    sshape.max_kv_len = 0;
    sshape.max_spans = max_spans + 1;
    cuda::DecodeAttentionPlan splan;
    BENCH_CHECK(cuda::PlanDecodeAttention(sshape, &splan));
    void* sws = nullptr;
    if (splan.workspace_bytes > 0) BENCH_CHECK(cudaMalloc(&sws, splan.workspace_bytes));
    cuda::DecodeAttentionArgs sargs = dargs;
    sargs.block_tables = nullptr;
    sargs.kv_lens = nullptr;
    sargs.spans = static_cast<KvSpan*>(dspans);
    sargs.span_offsets = static_cast<int32_t*>(doffs);
    BENCH_CHECK(bench::TimeLaunches(
        [&](int) { return cuda::RunDecodeAttention(splan, sargs, sws, splan.workspace_bytes, stream); },
        warmup, iters, stream, &ms));
    const double selection_ms = Median(ms);
    int64_t nans = 0;
    BENCH_CHECK(bench::CountBf16NaNs(out, q_elems, &nans));
    total_nans += nans;

    const double hip_ms = selection_ms + spans_ms + stage_ms[0] / kRefresh[0] + stage_ms[1] / kRefresh[1] +
                          stage_ms[2] / kRefresh[2];
    std::printf(
        "{\"bench\": \"hip_decode\", \"batch\": %d, \"kv_len\": %d, \"num_q_heads\": %d, "
        "\"num_kv_heads\": %d, \"head_dim\": %d, \"dtype\": \"bf16\", \"page_size\": %d, "
        "\"layer\": \"%s\", \"sinks\": %d, \"window\": %d, \"stages\": \"256:32768,32:8192,8:%d\", "
        "\"refresh\": \"32,16,8\", \"dense_ms\": %.5f, \"stage0_ms\": %.5f, \"stage1_ms\": %.5f, "
        "\"stage2_ms\": %.5f, \"chain_ms\": %.5f, \"spans_ms\": %.5f, \"selection_ms\": %.5f, "
        "\"kept_tokens\": %lld, "
        "\"selected_keys\": %lld, \"hip_ms\": %.5f, \"every_step_ms\": %.5f, "
        "\"speedup_vs_dense\": %.3f, \"speedup_every_step\": %.3f, \"iters\": %d, "
        "\"nan_outputs\": %lld}\n",
        batch, kv_len, kHq, kHkv, kD, kPage, dense_layer ? "dense_layer" : "pruned", kSinks, kWindow,
        static_cast<int>(stages[2].keep), dense_ms, stage_ms[0], stage_ms[1],
        stage_ms[2], chain_ms, spans_ms, selection_ms, static_cast<long long>(kept_tokens),
        static_cast<long long>(selected), hip_ms, chain_ms + spans_ms + selection_ms,
        dense_ms / hip_ms, dense_ms / (chain_ms + spans_ms + selection_ms), iters,
        static_cast<long long>(nans));
    // The same work launched as CUDA graphs (the engine captures its decode steps): the
    // every-step part (spans + selection attention) and each stage alone.
    auto graph_ms = [&](auto&& enqueue, double* median) -> int {
      cudaGraph_t graph = nullptr;
      cudaGraphExec_t exec = nullptr;
      BENCH_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      const cudaError_t e = enqueue();
      BENCH_CHECK(cudaStreamEndCapture(stream, &graph));
      BENCH_CHECK(e);
      BENCH_CHECK(cudaGraphInstantiate(&exec, graph, 0));
      BENCH_CHECK(bench::TimeLaunches([&](int) { return cudaGraphLaunch(exec, stream); }, warmup,
                                      iters, stream, &ms));
      *median = Median(ms);
      BENCH_CHECK(cudaGraphExecDestroy(exec));
      BENCH_CHECK(cudaGraphDestroy(graph));
      return 0;
    };
    double g_step = 0, g_stage[3] = {0, 0, 0};
    if (variant == 0 &&
        graph_ms([&] { return cuda::RunDecodeAttention(dplan, dargs, dws, dplan.workspace_bytes, stream); },
                 &graph_dense_ms) != 0) {
      return 1;
    }
    if (graph_ms(
            [&] {
              cudaError_t e = cuda::RunHipSpans(pshape, pargs, stream);
              if (e == cudaSuccess) {
                e = cuda::RunDecodeAttention(splan, sargs, sws, splan.workspace_bytes, stream);
              }
              return e;
            },
            &g_step) != 0) {
      return 1;
    }
    for (int st = 0; st < 3; ++st) {
      if (graph_ms([&] { return cuda::RunHipStage(shapes[st], args[st], stream); },
                   &g_stage[st]) != 0) {
        return 1;
      }
    }
    const double graph_hip_ms = g_step + g_stage[0] / kRefresh[0] + g_stage[1] / kRefresh[1] +
                                g_stage[2] / kRefresh[2];
    std::printf("{\"bench\": \"hip_decode_graph\", \"batch\": %d, \"kv_len\": %d, \"layer\": \"%s\", "
                "\"dense_ms\": %.5f, \"graph_dense_ms\": %.5f, \"step_ms\": %.5f, \"stage0_ms\": %.5f, \"stage1_ms\": %.5f, "
                "\"stage2_ms\": %.5f, \"hip_ms\": %.5f, \"speedup_vs_dense\": %.3f}\n",
                batch, kv_len, dense_layer ? "dense_layer" : "pruned", dense_ms, graph_dense_ms,
                g_step, g_stage[0], g_stage[1], g_stage[2], graph_hip_ms,
                graph_dense_ms / graph_hip_ms);
    graph_layer_ms[variant] = graph_hip_ms;
    std::fflush(stdout);
    layer_ms[variant] = hip_ms;
    for (void* p : {sws, dspans, doffs, dtok, dsinks, dwin, pws, ranges[0], ranges[1], ranges[2],
                    ranges[3], counts[0], counts[1], counts[2], counts[3], ws[0], ws[1], ws[2]}) {
      if (p != nullptr) BENCH_CHECK(cudaFree(p));
    }
  }
  // A decode step of the whole model's attention: kDenseLayers layers of the dense kind, the
  // rest pruned, against dense attention on every layer.
  auto mean = [](const double* per_kind) {
    return (kDenseLayers * per_kind[1] + (kLayers - kDenseLayers) * per_kind[0]) / kLayers;
  };
  const double model_ms = mean(layer_ms), graph_model_ms = mean(graph_layer_ms);
  std::printf("{\"bench\": \"hip_decode_model\", \"batch\": %d, \"kv_len\": %d, \"layers\": %d, "
              "\"dense_layers\": %d, \"dense_ms\": %.5f, \"hip_ms_per_layer\": %.5f, "
              "\"speedup_vs_dense\": %.3f, \"graph_dense_ms\": %.5f, \"graph_hip_ms_per_layer\": %.5f, "
              "\"graph_speedup_vs_dense\": %.3f}\n",
              batch, kv_len, kLayers, kDenseLayers, dense_ms, model_ms, dense_ms / model_ms,
              graph_dense_ms, graph_model_ms, graph_dense_ms / graph_model_ms);
  std::fflush(stdout);
  BENCH_CHECK(cudaStreamDestroy(stream));
  for (void* p : {pages, q, qf_dev, out, bt, dlens, lo, hi, dws, dfirst}) {
    if (p != nullptr) BENCH_CHECK(cudaFree(p));
  }
  return total_nans == 0 ? 0 : 2;
}

// HiP's pruning for a whole prompt (prefill): one query block of 64 rows per 64 tokens, each
// pruning its middle (after the sinks, up to the masking window before its first row) when it
// outgrows the last stage's keep, with the block's queries averaged in groups of 4 for stages 0
// and 1 and all 64 in stage 2 (v1.2's defaults), one chain of the three stages over all blocks.
// Only the pruning is timed (not the attention that reads the kept chunks afterwards); its
// peer is dense causal attention, prefill_attention_peer.py --causal.
int RunPrefillPruning(int kv_len, int iters, int warmup) {
  constexpr int kBlock = 64, kPool = 4;
  std::mt19937 rng(777 + kv_len);
  const int blocks_per_seq = (kv_len + kPage - 1) / kPage;
  const int64_t row = int64_t{kHkv} * kD;
  const int64_t page_elems = 2 * kPage * row;
  std::vector<int32_t> table(blocks_per_seq);
  std::iota(table.begin(), table.end(), 0);
  std::shuffle(table.begin(), table.end(), rng);
  // The pruning blocks and their middles.
  std::vector<cuda::HipChunk> middles;
  std::vector<int32_t> first_tokens;
  for (int first = 0; first < kv_len; first += kBlock) {
    const int end = std::max(kSinks, first + 1 - (kWindow - static_cast<int>(kStages[0].chunk)));
    if (end - kSinks > kStages[2].keep) {
      middles.push_back({kSinks, end});
      first_tokens.push_back(first);
    }
  }
  const int nb = static_cast<int>(middles.size());
  const size_t pooled = static_cast<size_t>(nb) * (kBlock / kPool) * kHq * kD;
  const size_t full = static_cast<size_t>(nb) * kBlock * kHq * kD;
  const std::vector<float> inv_freq =
      cpu::InvFrequencies(cpu::RopeParams{.head_dim = kD, .theta = 500000.0});
  const cuda::RopeTablesHost tables = cuda::BuildRopeTables(inv_freq, kv_len + 1);
  void *pages, *bt, *lo, *hi, *qp, *qf, *dfirst;
  BENCH_CHECK(cudaMalloc(&pages, static_cast<size_t>(blocks_per_seq) * page_elems * 2));
  BENCH_CHECK(cudaMalloc(&bt, table.size() * 4));
  BENCH_CHECK(cudaMalloc(&lo, tables.lo.size() * 4));
  BENCH_CHECK(cudaMalloc(&hi, tables.hi.size() * 4));
  BENCH_CHECK(cudaMalloc(&qp, pooled * 4));
  BENCH_CHECK(cudaMalloc(&qf, full * 4));
  BENCH_CHECK(cudaMalloc(&dfirst, nb * 4));
  BENCH_CHECK(bench::FillRandomBf16(static_cast<uint16_t*>(pages),
                                    static_cast<size_t>(blocks_per_seq) * page_elems, 7u));
  // Queries: random 16-bit halves, so each float's upper half is a random bf16 in [-2, 2):
  // finite values of both signs (their values do not change the work).
  BENCH_CHECK(bench::FillRandomBf16(qp, pooled * 2, 13u));
  BENCH_CHECK(bench::FillRandomBf16(qf, full * 2, 17u));
  BENCH_CHECK(cudaMemcpy(bt, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(lo, tables.lo.data(), tables.lo.size() * 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(hi, tables.hi.data(), tables.hi.size() * 4, cudaMemcpyHostToDevice));
  BENCH_CHECK(cudaMemcpy(dfirst, first_tokens.data(), nb * 4, cudaMemcpyHostToDevice));
  int capacity[3], in_capacity[3];
  StageCapacities((kv_len + static_cast<int>(kStages[0].chunk) - 1) / static_cast<int>(kStages[0].chunk),
                  capacity, in_capacity);
  void *ranges[4], *counts[4], *ws[3];
  if (UploadMiddles(middles, &ranges[0], &counts[0]) != 0) return 1;
  cuda::HipStageShape shapes[3];
  cuda::HipStageArgs args[3];
  for (int st = 0; st < 3; ++st) {
    const bool pool = st < 2;
    shapes[st] = cuda::HipStageShape{.dtype = cuda::DType::kBF16, .head_dim = kD,
                                     .num_q_heads = kHq, .num_kv_heads = kHkv, .page_size = kPage,
                                     .num_blocks = nb, .num_queries = pool ? kBlock / kPool : kBlock,
                                     .max_ranges = in_capacity[st], .max_chunks = capacity[st],
                                     .rope_hi_rows = tables.num_hi_rows,
                                     .chunk = static_cast<int>(kStages[st].chunk),
                                     .keep = static_cast<int>(kStages[st].keep),
                                     .query_position = kWindow - static_cast<int>(kStages[0].chunk) + 1};
    BENCH_CHECK(cudaMalloc(&ranges[st + 1], size_t{8} * nb * capacity[st]));
    BENCH_CHECK(cudaMalloc(&counts[st + 1], nb * 4));
    BENCH_CHECK(cudaMalloc(&ws[st], cuda::HipStageWorkspaceBytes(shapes[st])));
    args[st] = cuda::HipStageArgs{.q = static_cast<float*>(pool ? qp : qf),
                                  .first_query_position = static_cast<int32_t*>(dfirst),
                                  .pages = pages, .page_stride = page_elems, .k_offset = 0,
                                  .block_tables = static_cast<int32_t*>(bt),
                                  .block_table_stride = 0,  // one sequence: every block shares it
                                  .in_ranges = static_cast<cuda::HipChunk*>(ranges[st]),
                                  .in_count = static_cast<int32_t*>(counts[st]),
                                  .out_ranges = static_cast<cuda::HipChunk*>(ranges[st + 1]),
                                  .out_count = static_cast<int32_t*>(counts[st + 1]),
                                  .rope_lo = static_cast<float*>(lo),
                                  .rope_hi = static_cast<float*>(hi), .workspace = ws[st]};
  }
  cudaStream_t stream;
  BENCH_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::vector<float> ms;
  double stage_ms[3];
  for (int st = 0; st < 3; ++st) {
    BENCH_CHECK(bench::TimeLaunches([&](int) { return cuda::RunHipStage(shapes[st], args[st], stream); },
                                    warmup, iters, stream, &ms));
    stage_ms[st] = Median(ms);
  }
  std::printf("{\"bench\": \"hip_prefill_pruning\", \"kv_len\": %d, \"pruning_blocks\": %d, "
              "\"block\": %d, \"pool\": \"4,4,1\", \"stages\": \"256:32768,32:8192,8:2048\", "
              "\"stage0_ms\": %.4f, \"stage1_ms\": %.4f, \"stage2_ms\": %.4f, \"pruning_ms\": %.4f, "
              "\"iters\": %d}\n",
              kv_len, nb, kBlock, stage_ms[0], stage_ms[1], stage_ms[2],
              stage_ms[0] + stage_ms[1] + stage_ms[2], iters);
  std::fflush(stdout);
  BENCH_CHECK(cudaStreamDestroy(stream));
  for (void* p : {pages, bt, lo, hi, qp, qf, dfirst, ranges[0], ranges[1], ranges[2], ranges[3],
                  counts[0], counts[1], counts[2], counts[3], ws[0], ws[1], ws[2]}) {
    BENCH_CHECK(cudaFree(p));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 50, warmup = 5;
  std::vector<std::pair<int, int>> shapes = {{1, 131072}, {1, 524288}, {1, 1048576}, {8, 131072}};
  std::vector<int> prefill = {32768, 65536, 131072};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--warmup") == 0) warmup = std::max(0, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--shapes") == 0) {
      shapes.clear();
      for (const char* p = argv[i + 1]; *p != '\0';) {
        int b = 0, t = 0;
        if (std::sscanf(p, "%dx%d", &b, &t) != 2 || b < 1 || t <= 2 * kWindow + kSinks) {
          std::fprintf(stderr, "--shapes: expected BxT[,BxT...] with T > %d, got '%s'\n",
                       2 * kWindow + kSinks, p);
          return 2;
        }
        shapes.emplace_back(b, t);
        const char* comma = std::strchr(p, ',');
        p = comma == nullptr ? p + std::strlen(p) : comma + 1;
      }
    }
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--prefill") == 0) {
      prefill.clear();
      for (const char* p = argv[i + 1]; *p != '\0' && std::strcmp(p, "none") != 0;) {
        const int t = std::atoi(p);
        if (t <= 2 * kWindow + kSinks) {
          std::fprintf(stderr, "--prefill: expected T[,T...] with T > %d or none\n", 2 * kWindow + kSinks);
          return 2;
        }
        prefill.push_back(t);
        const char* comma = std::strchr(p, ',');
        p = comma == nullptr ? p + std::strlen(p) : comma + 1;
      }
    }
  }
  int rc = 0;
  for (auto [b, t] : shapes) rc |= RunShape(b, t, iters, warmup);
  for (int t : prefill) rc |= RunPrefillPruning(t, std::max(3, iters / 10), 1);
  return rc;
}
