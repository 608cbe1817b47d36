// End-to-end speed of the CUDA backend on a random bf16 model in Llama-3-8B's exact shape
// (ANCHORS: speed does not depend on the values): prefill of `--context`-token prompts, then
// decode steps of every sequence at once through CudaModelRunner (CUDA graphs, GPU sampling),
// timed per step on the host (metadata upload, graph replay, token download, sync included).
// Prints one JSON line per batch size; its peer is e2e_hf_peer.py (Hugging Face generate).
//
//   e2e_decode_bench [--batches 1,64,256] [--context 1024] [--steps 64] [--warmup 8]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "engine/cuda/cublaslt_gemm.h"
#include "engine/cuda/cuda_model_runner.h"
#include "kvcache/block_pool.h"
#include "kvcache/block_table.h"
#include "tools/bench/llama3_shape.h"

namespace longview {
namespace {

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// Times the model's GEMMs alone at m = `m` (after the same autotuning the runner does) and prints
// each one's achieved weight-read bandwidth: what the decode step's GEMMs cost without the rest.
int ProbeGemms(const ModelConfig& c, int64_t m) {
  auto gemm = cuda::CublasLtGemm::Create(size_t{32} << 20);
  if (!gemm.ok()) return 1;
  const int64_t q_dim = c.num_attention_heads * c.head_dim, kv_dim = c.num_key_value_heads * c.head_dim;
  const struct {
    const char* name;
    int64_t n, k;
  } shapes[] = {{"qkv", q_dim + 2 * kv_dim, c.hidden_size},
                {"o", c.hidden_size, q_dim},
                {"gate_up", 2 * c.intermediate_size, c.hidden_size},
                {"down", c.hidden_size, c.intermediate_size},
                {"lm_head", c.vocab_size, c.hidden_size}};
  cudaStream_t stream = nullptr;
  (void)cudaStreamCreate(&stream);
  cudaEvent_t a = nullptr, b = nullptr;
  (void)cudaEventCreate(&a);
  (void)cudaEventCreate(&b);
  double layer_us = 0;
  for (const auto& sh : shapes) {
    void *x = nullptr, *w = nullptr, *y = nullptr;
    if (cudaMalloc(&x, m * sh.k * 2) != cudaSuccess || cudaMalloc(&w, sh.n * sh.k * 2) != cudaSuccess ||
        cudaMalloc(&y, m * sh.n * 4) != cudaSuccess) {
      return 1;
    }
    (void)cudaMemset(w, 0, sh.n * sh.k * 2);
    (void)cudaMemset(x, 0, m * sh.k * 2);
    const bool logits = std::string(sh.name) == "lm_head";
    cuda::GemmArgs g{.m = m, .n = sh.n, .k = sh.k, .x = x, .w = w, .y = y, .y_float32 = logits};
    if (!(*gemm)->Run(g, stream).ok()) return 1;  // plans and tunes
    constexpr int kRuns = 50;
    (void)cudaEventRecord(a, stream);
    for (int i = 0; i < kRuns; ++i) (void)(*gemm)->Run(g, stream);
    (void)cudaEventRecord(b, stream);
    (void)cudaEventSynchronize(b);
    float ms = 0;
    (void)cudaEventElapsedTime(&ms, a, b);
    const double us = ms * 1e3 / kRuns;
    if (!logits) layer_us += us;
    std::printf("{\"bench\": \"gemm_probe\", \"m\": %lld, \"gemm\": \"%s\", \"n\": %lld, "
                "\"k\": %lld, \"us\": %.2f, \"weight_tbps\": %.3f}\n",
                static_cast<long long>(m), sh.name, static_cast<long long>(sh.n),
                static_cast<long long>(sh.k), us, sh.n * sh.k * 2 / (us * 1e-6) / 1e12);
    (void)cudaFree(x);
    (void)cudaFree(w);
    (void)cudaFree(y);
  }
  std::printf("{\"bench\": \"gemm_probe\", \"m\": %lld, \"layer_gemms_us\": %.1f, "
              "\"model_gemms_ms\": %.3f}\n",
              static_cast<long long>(m), layer_us, layer_us * c.num_hidden_layers / 1e3);
  return 0;
}

int Run(int argc, char** argv) {
  std::string batches_arg = "1,64,256";
  int64_t context = 1024, steps = 64, warmup = 8;
  CLI::App app("e2e_decode_bench");
  app.add_option("--batches", batches_arg);
  app.add_option("--context", context);
  app.add_option("--steps", steps);
  app.add_option("--warmup", warmup);
  int64_t probe_m = 0;
  app.add_option("--probe-gemms", probe_m, "only time the model's GEMMs at this m, then exit");
  CLI11_PARSE(app, argc, argv);
  if (probe_m > 0) return ProbeGemms(Llama3_8BShape(), probe_m);
  std::vector<int64_t> batches;
  std::stringstream ss(batches_arg);
  for (std::string b; std::getline(ss, b, ',');) batches.push_back(std::stoll(b));

  const ModelConfig cfg = Llama3_8BShape();
  CudaRunnerOptions o;
  o.max_num_seqs = *std::max_element(batches.begin(), batches.end());
  o.max_num_tokens = 8192;
  o.gpu_memory_utilization = 0.92;
  const auto t0 = std::chrono::steady_clock::now();
  auto runner = CudaModelRunner::Create(cfg, nullptr, o, /*random_seed=*/7);
  if (!runner.ok()) {
    std::fprintf(stderr, "e2e_decode_bench: %s\n", runner.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "model ready in %.1f s: %d KV pages of %lld bytes\n",
               Ms(std::chrono::steady_clock::now() - t0) / 1e3, (*runner)->num_pages(),
               static_cast<long long>((*runner)->page_bytes()));
  for (int64_t B : batches) {
    BlockPool pool((*runner)->num_pages());
    std::vector<BlockTable> tables(B, BlockTable(o.page_size));
    const int64_t total = context + warmup + steps + 1;
    for (auto& t : tables) {
      auto ids = pool.Allocate(t.BlocksNeeded(total));
      if (!ids) {
        std::fprintf(stderr, "not enough KV pages for batch %lld\n", static_cast<long long>(B));
        return 1;
      }
      t.Append(*ids);
    }
    std::vector<std::vector<int32_t>> prompts(B);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < context; ++i) {
        prompts[b].push_back(static_cast<int32_t>((b * 7919 + i * 104729) % cfg.vocab_size));
      }
    }
    auto make_seq = [&](int64_t b, std::vector<int32_t> toks, int64_t start) {
      ScheduledSequence s;
      s.seq_id = b;
      s.token_ids = std::move(toks);
      s.start_pos = start;
      s.block_ids.assign(tables[b].blocks().begin(), tables[b].blocks().end());
      s.need_logits = true;
      s.device_sampling = DeviceSampling{.temperature = 0.f};
      return s;
    };
    // Prefill, as many whole prompts per step as the token budget allows.
    StepResult r;
    std::vector<int32_t> last(B);
    const auto p0 = std::chrono::steady_clock::now();
    for (int64_t b = 0; b < B;) {
      StepPlan plan;
      int64_t tokens = 0;
      while (b < B && tokens + context <= o.max_num_tokens) {
        plan.seqs.push_back(make_seq(b, prompts[b], 0));
        tokens += context;
        ++b;
      }
      if (absl::Status st = (*runner)->Execute(plan, r); !st.ok()) {
        std::fprintf(stderr, "prefill: %s\n", st.ToString().c_str());
        return 1;
      }
      for (size_t i = 0; i < plan.seqs.size(); ++i) last[plan.seqs[i].seq_id] = r.tokens[i];
    }
    const double prefill_ms = Ms(std::chrono::steady_clock::now() - p0);
    std::vector<double> step_ms, gpu_ms;
    for (int64_t s = 0; s < warmup + steps; ++s) {
      StepPlan plan;
      for (int64_t b = 0; b < B; ++b) plan.seqs.push_back(make_seq(b, {last[b]}, context + s));
      const auto s0 = std::chrono::steady_clock::now();
      if (absl::Status st = (*runner)->Execute(plan, r); !st.ok()) {
        std::fprintf(stderr, "decode: %s\n", st.ToString().c_str());
        return 1;
      }
      const double ms = Ms(std::chrono::steady_clock::now() - s0);
      for (int64_t b = 0; b < B; ++b) last[b] = r.tokens[b];
      if (s >= warmup) {
        step_ms.push_back(ms);
        gpu_ms.push_back((*runner)->stats().last_step_gpu_ms);
      }
    }
    std::vector<double> sorted = step_ms;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    std::sort(gpu_ms.begin(), gpu_ms.end());
    const double gpu_median = gpu_ms[gpu_ms.size() / 2];
    const double mean = std::accumulate(step_ms.begin(), step_ms.end(), 0.0) / step_ms.size();
    std::printf(
        "{\"bench\": \"e2e_decode\", \"impl\": \"longview_cuda\", \"model\": \"llama3-8b-shape\", "
        "\"dtype\": \"bf16\", \"batch\": %lld, \"context\": %lld, \"steps\": %lld, "
        "\"ms_per_step_median\": %.3f, \"ms_per_step_mean\": %.3f, \"ms_per_step_p90\": %.3f, "
        "\"gpu_ms_per_step_median\": %.3f, "
        "\"output_tok_per_s\": %.1f, \"prefill_ms\": %.1f, \"prefill_tok_per_s\": %.0f, "
        "\"graph_replays\": %lld, \"graph_captures\": %lld}\n",
        static_cast<long long>(B), static_cast<long long>(context),
        static_cast<long long>(steps), median, mean, sorted[sorted.size() * 9 / 10], gpu_median,
        B * 1000.0 / median, prefill_ms, B * context * 1000.0 / prefill_ms,
        static_cast<long long>((*runner)->stats().graph_replays),
        static_cast<long long>((*runner)->stats().graph_captures));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace longview

int main(int argc, char** argv) { return longview::Run(argc, argv); }
