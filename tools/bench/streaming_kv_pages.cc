// Streams a long greedy generation under StreamingLLM (sliding_window with sinks) on the CPU
// backend and prints, over time, the KV pages the sequence holds and the process's resident
// memory: both stay flat whatever the length (DESIGN §4; the bound is ceil(sinks/page) +
// ceil(window/page) + 1 pages).
//
//   build-sw-rel/tools/bench/streaming_kv_pages --model models/longview-tiny
//       --prompt-tokens 100000 --tokens 1000 --window 256 --sinks 4 --every 5000   (one line)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "scheduler/generator.h"

namespace {

// VmRSS of this process in KiB, from /proc/self/status (0 if unavailable).
long ResidentKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("StreamingLLM KV pages over a long stream");
  std::string model_dir = "models/longview-tiny";
  int64_t prompt_tokens = 0, tokens = 100000, window = 256, sinks = 4, page_size = 16,
          every = 5000;
  app.add_option("--model", model_dir, "model folder");
  app.add_option("--prompt-tokens", prompt_tokens,
                 "length of a pseudo-random prompt streamed in first (prefilled a page at a time)");
  app.add_option("--tokens", tokens, "tokens to generate");
  app.add_option("--window", window, "sliding window (tokens)");
  app.add_option("--sinks", sinks, "attention sinks (tokens)");
  app.add_option("--page-size", page_size, "KV page size (tokens)");
  app.add_option("--every", every, "print every this many tokens");
  CLI11_PARSE(app, argc, argv);

  auto lm = longview::LoadedModel::Load(model_dir);
  if (!lm.ok()) {
    std::fprintf(stderr, "%s\n", std::string(lm.status().message()).c_str());
    return 1;
  }
  const auto& cfg = (*lm)->config;
  const int64_t kv_page_bytes = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads *
                                cfg.head_dim * page_size * static_cast<int64_t>(sizeof(float));
  const int64_t bound = (sinks + page_size - 1) / page_size + (window + page_size - 1) / page_size + 1;
  std::printf("model %s: %ld layers, KV page %ld tokens = %ld bytes; sinks %ld, window %ld, "
              "bound %ld pages\n",
              model_dir.c_str(), static_cast<long>(cfg.num_hidden_layers),
              static_cast<long>(page_size), static_cast<long>(kv_page_bytes),
              static_cast<long>(sinks), static_cast<long>(window), static_cast<long>(bound));
  std::printf("%10s %10s %12s %12s %10s\n", "tokens", "kv_pages", "kv_bytes", "rss_kib",
              "tok/s");
  const auto t0 = std::chrono::steady_clock::now();
  longview::GenerateOptions opt;
  opt.sampling.temperature = 0;
  opt.max_tokens = tokens;
  opt.ignore_eos = true;
  opt.page_size = page_size;
  absl::StatusOr<longview::Attention> attention = longview::Attention::Of(
      longview::SlidingWindowAttention{.window = window, .sinks = sinks});
  if (!attention.ok()) {
    std::fprintf(stderr, "%s\n", std::string(attention.status().message()).c_str());
    return 1;
  }
  opt.attention = *attention;
  int64_t next_print = every;
  opt.on_kv_pages = [&](int64_t num_tokens, int64_t pages) {
    if (num_tokens < next_print) return;
    next_print += every;
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%10ld %10ld %12ld %12ld %10.1f\n", static_cast<long>(num_tokens),
                static_cast<long>(pages), static_cast<long>(pages * kv_page_bytes),
                ResidentKib(), num_tokens / s);
    std::fflush(stdout);
  };
  // BOS, then a fixed pseudo-random token stream (a linear congruential generator).
  std::vector<int32_t> prompt = {1};
  uint32_t state = 12345;
  for (int64_t i = 0; i < prompt_tokens; ++i) {
    state = state * 1664525u + 1013904223u;
    prompt.push_back(static_cast<int32_t>(3 + (state >> 8) % (cfg.vocab_size - 3)));
  }
  auto r = longview::Generate(**lm, prompt, opt);
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", std::string(r.status().message()).c_str());
    return 1;
  }
  std::printf("done: %zu prompt + %zu generated tokens, peak %ld KV pages (bound %ld), rss %ld "
              "KiB\n",
              r->prompt_tokens.size(), r->output_tokens.size(), static_cast<long>(r->peak_kv_pages),
              static_cast<long>(bound), ResidentKib());
  return r->peak_kv_pages <= bound ? 0 : 2;
}
