// A long StreamingLLM stream on the CUDA backend (issue 6): a random bf16 model in Llama-3-8B's
// shape takes `--tokens` input tokens in chunks (chunked prefill, sinks + window attention with
// positions re-assigned), freeing every page that left the window, then decodes `--decode`
// tokens at the end of the stream. Prints, every `--every` tokens, the KV pages the sequence
// holds, the GPU memory in use (cudaMemGetInfo) and the throughput, as JSON lines; exits 2 if the
// pages ever exceed the bound ceil(sinks / ps) + ceil((window + chunk - 1) / ps) + 1.
//
//   streaming_gpu_bench [--tokens 1048576] [--chunk 2048] [--window 4096] [--sinks 4]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "CLI/CLI.hpp"
#include "engine/cuda/cuda_model_runner.h"
#include "kvcache/block_pool.h"
#include "kvcache/block_table.h"
#include "tools/bench/llama3_shape.h"

namespace longview {
namespace {

double GpuUsedGiB() {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return -1;
  return static_cast<double>(total_b - free_b) / (1 << 30);
}

int Run(int argc, char** argv) {
  int64_t tokens = 1 << 20, chunk = 2048, window = 4096, sinks = 4, decode = 64,
          every = 1 << 17, page_size = 16;
  CLI::App app("streaming_gpu_bench");
  app.add_option("--tokens", tokens);
  app.add_option("--chunk", chunk);
  app.add_option("--window", window);
  app.add_option("--sinks", sinks);
  app.add_option("--decode", decode);
  app.add_option("--every", every);
  CLI11_PARSE(app, argc, argv);

  const ModelConfig cfg = Llama3_8BShape();
  CudaRunnerOptions o;
  o.page_size = page_size;
  o.max_num_seqs = 8;
  o.max_num_tokens = chunk;
  o.num_pages = 2048;  // far above the bound: the bound is what the stream holds, not the pool
  auto runner = CudaModelRunner::Create(cfg, nullptr, o, /*random_seed=*/11);
  if (!runner.ok()) {
    std::fprintf(stderr, "streaming_gpu_bench: %s\n", runner.status().ToString().c_str());
    return 1;
  }
  const int64_t bound = (sinks + page_size - 1) / page_size +
                        (window + chunk - 1 + page_size - 1) / page_size + 1;
  BlockPool pool((*runner)->num_pages());
  BlockTable table(page_size);
  absl::StatusOr<Attention> fwd =
      Attention::Of(SlidingWindowAttention{.window = window, .sinks = sinks});
  if (!fwd.ok()) {
    std::fprintf(stderr, "%s\n", std::string(fwd.status().message()).c_str());
    return 1;
  }
  int64_t released_end = 0, peak_pages = 0;
  // Frees what the query at `start` no longer sees, then allocates through `end`.
  auto make_room = [&](int64_t start, int64_t end) -> bool {
    const BlockRange out = BlocksOutsideWindow(page_size, sinks, window, start);
    for (int64_t b = std::max(out.begin, released_end); b < out.end; ++b) {
      const int32_t id = table.ReleaseBlock(b);
      if (id >= 0 && !pool.Free(std::span<const int32_t>(&id, 1)).ok()) return false;
    }
    released_end = std::max(released_end, out.end);
    auto ids = pool.Allocate(table.BlocksNeeded(end));
    if (!ids) return false;
    table.Append(*ids);
    peak_pages = std::max(peak_pages, table.NumResident());
    return true;
  };
  auto step = [&](std::vector<int32_t> toks, int64_t start, int32_t* next) -> absl::Status {
    StepPlan plan;
    ScheduledSequence s;
    s.seq_id = 1;
    s.token_ids = std::move(toks);
    s.start_pos = start;
    s.block_ids.assign(table.blocks().begin(), table.blocks().end());
    s.need_logits = true;
    s.attention = *fwd;
    s.device_sampling = DeviceSampling{.temperature = 0.f};
    plan.seqs.push_back(std::move(s));
    StepResult r;
    RETURN_IF_ERROR((*runner)->Execute(plan, r));
    *next = r.tokens[0];
    return absl::OkStatus();
  };
  std::printf("{\"event\": \"start\", \"model\": \"llama3-8b-shape\", \"dtype\": \"bf16\", "
              "\"sinks\": %lld, \"window\": %lld, \"chunk\": %lld, \"page_size\": %lld, "
              "\"page_bytes\": %lld, \"bound_pages\": %lld, \"gpu_used_gib\": %.3f}\n",
              static_cast<long long>(sinks), static_cast<long long>(window),
              static_cast<long long>(chunk), static_cast<long long>(page_size),
              static_cast<long long>((*runner)->page_bytes()), static_cast<long long>(bound),
              GpuUsedGiB());
  uint32_t state = 12345;
  int32_t next = 0;
  const auto t0 = std::chrono::steady_clock::now();
  int64_t next_print = every;
  double min_used = 1e30, max_used = 0;
  for (int64_t pos = 0; pos < tokens;) {
    const int64_t n = std::min(chunk, tokens - pos);
    std::vector<int32_t> toks(n);
    for (auto& t : toks) {
      state = state * 1664525u + 1013904223u;
      t = static_cast<int32_t>(3 + (state >> 8) % (cfg.vocab_size - 3));
    }
    if (!make_room(pos, pos + n)) {
      std::fprintf(stderr, "pool exhausted at %lld\n", static_cast<long long>(pos));
      return 1;
    }
    if (absl::Status st = step(std::move(toks), pos, &next); !st.ok()) {
      std::fprintf(stderr, "step at %lld: %s\n", static_cast<long long>(pos),
                   st.ToString().c_str());
      return 1;
    }
    pos += n;
    const double used = GpuUsedGiB();
    min_used = std::min(min_used, used);
    max_used = std::max(max_used, used);
    if (pos >= next_print || pos == tokens) {
      next_print += every;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("{\"event\": \"stream\", \"tokens\": %lld, \"kv_pages\": %lld, "
                  "\"peak_kv_pages\": %lld, \"gpu_used_gib\": %.3f, \"tok_per_s\": %.0f}\n",
                  static_cast<long long>(pos), static_cast<long long>(table.NumResident()),
                  static_cast<long long>(peak_pages), used, pos / s);
      std::fflush(stdout);
    }
  }
  std::vector<double> ms;
  for (int64_t i = 0; i < decode; ++i) {
    const int64_t pos = tokens + i;
    if (!make_room(pos, pos + 1)) return 1;
    const auto s0 = std::chrono::steady_clock::now();
    if (absl::Status st = step({next}, pos, &next); !st.ok()) {
      std::fprintf(stderr, "decode at %lld: %s\n", static_cast<long long>(pos),
                   st.ToString().c_str());
      return 1;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s0)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("{\"event\": \"done\", \"tokens\": %lld, \"decode_steps\": %lld, "
              "\"decode_ms_median\": %.3f, \"peak_kv_pages\": %lld, \"bound_pages\": %lld, "
              "\"gpu_used_gib_min\": %.3f, \"gpu_used_gib_max\": %.3f}\n",
              static_cast<long long>(tokens + decode), static_cast<long long>(decode),
              ms.empty() ? 0.0 : ms[ms.size() / 2], static_cast<long long>(peak_pages),
              static_cast<long long>(bound), min_used, max_used);
  return peak_pages <= bound ? 0 : 2;
}

}  // namespace
}  // namespace longview

int main(int argc, char** argv) { return longview::Run(argc, argv); }
