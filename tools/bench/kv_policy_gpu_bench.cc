// KV eviction policies on the CUDA backend at Llama-3-8B's shape (issue 14): memory per sequence
// and decode throughput per policy. A random bf16 model in the exact shape (speed and memory do
// not depend on the values) serves `--seqs` sequences of `--prompt` random tokens each through
// the scheduler (continuous batching, chunked prefill of `--chunk` tokens per step, the KV
// policy decided between steps from the runner's per-key statistics) and decodes `--decode`
// tokens each, greedy on the device. Per policy (dense first, then each policy at a budget of
// `--budget-fraction` of the prompt) one JSON line: KV pages held per sequence at the end of
// prefill and at most, their bytes, prefill seconds, decode ms per step (median over the steps
// where every sequence decodes) and decode tokens/s; the ratios to dense are in the report.
//
//   kv_policy_gpu_bench [--seqs 16] [--prompt 8192] [--budget-fraction 0.25] [--decode 128]
//                       [--chunk 2048] [--policies none,streaming,h2o,snapkv,lazy]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "engine/cuda/cuda_model_runner.h"
#include "kvcache/kv_cache_manager.h"
#include "kvcache/kv_policy.h"
#include "scheduler/scheduler.h"
#include "tools/bench/llama3_shape.h"

namespace longview {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Result {
  int64_t pages_after_prefill = 0;  // all sequences, when the last one got its first token
  int64_t peak_pages = 0;
  double prefill_s = 0;
  std::vector<double> decode_ms;  // steps where every sequence decoded
  int64_t evicted = 0;
};

absl::StatusOr<Result> RunPolicy(CudaModelRunner& runner, const ModelConfig& cfg,
                                 const KvPolicySpec& spec, int64_t seqs, int64_t prompt,
                                 int64_t decode, int64_t chunk) {
  KvCacheManager kv({.num_blocks = runner.num_pages(), .page_size = 16});
  Scheduler sched({.max_num_batched_tokens = chunk, .max_num_seqs = seqs}, &kv);
  uint32_t state = 12345;
  std::map<int64_t, int64_t> generated;
  for (int64_t i = 0; i < seqs; ++i) {
    std::vector<int32_t> p(prompt);
    for (auto& t : p) {
      state = state * 1664525u + 1013904223u;
      t = static_cast<int32_t>(3 + (state >> 8) % (cfg.vocab_size - 3));
    }
    generated[sched.AddSequence({.prompt = std::move(p), .kv_policy = spec})] = 0;
  }
  Result r;
  const auto t0 = Clock::now();
  bool prefilled = false;
  while (sched.HasWork()) {
    const SchedulePlan sp = sched.Schedule();
    ASSIGN_OR_RETURN(StepPlan step, sched.Apply(sp));
    if (step.seqs.empty()) return absl::InternalError("the scheduler planned an empty step");
    bool all_decode = step.seqs.size() == static_cast<size_t>(seqs);
    for (ScheduledSequence& s : step.seqs) {
      all_decode = all_decode && s.token_ids.size() == 1;
      if (s.need_logits) s.device_sampling = DeviceSampling{.temperature = 0.f};
    }
    StepResult res;
    const auto s0 = Clock::now();
    RETURN_IF_ERROR(runner.Execute(step, res));
    const double ms = Seconds(Clock::now() - s0) * 1e3;
    sched.StepDone(step, res);
    r.peak_pages = std::max<int64_t>(r.peak_pages, kv.num_blocks() - kv.NumFreeBlocks());
    std::vector<int64_t> done;
    for (size_t i = 0; i < step.seqs.size(); ++i) {
      const ScheduledSequence& s = step.seqs[i];
      if (!s.need_logits) continue;
      sched.AppendToken(s.seq_id, res.tokens[i]);
      if (++generated[s.seq_id] >= decode) done.push_back(s.seq_id);
    }
    if (prefilled && all_decode) r.decode_ms.push_back(ms);
    if (!prefilled) {
      bool all = true;
      for (const auto& [id, n] : generated) all = all && n > 0;
      if (all) {
        prefilled = true;
        r.prefill_s = Seconds(Clock::now() - t0);
        r.pages_after_prefill = kv.num_blocks() - kv.NumFreeBlocks();
      }
    }
    for (int64_t id : done) RETURN_IF_ERROR(sched.Finish(id));
  }
  for (const auto& c : sched.policy_counts()) r.evicted += c.tokens_evicted;
  return r;
}

int Run(int argc, char** argv) {
  int64_t seqs = 16, prompt = 8192, decode = 128, chunk = 2048;
  double fraction = 0.25;
  std::string policies = "none,streaming,h2o,snapkv,lazy";
  CLI::App app("kv_policy_gpu_bench");
  app.add_option("--seqs", seqs);
  app.add_option("--prompt", prompt);
  app.add_option("--decode", decode);
  app.add_option("--chunk", chunk);
  app.add_option("--budget-fraction", fraction);
  app.add_option("--policies", policies);
  CLI11_PARSE(app, argc, argv);

  const ModelConfig cfg = Llama3_8BShape();
  CudaRunnerOptions o;
  o.page_size = 16;
  o.max_num_seqs = seqs;
  o.max_num_tokens = chunk;
  o.max_model_len = prompt + decode + 16;
  o.num_pages = static_cast<int32_t>(seqs * ((prompt + decode + 15) / 16 + 2));
  auto runner = CudaModelRunner::Create(cfg, nullptr, o, /*random_seed=*/11);
  if (!runner.ok()) {
    std::fprintf(stderr, "kv_policy_gpu_bench: %s\n", runner.status().ToString().c_str());
    return 1;
  }
  const int64_t budget = static_cast<int64_t>(fraction * static_cast<double>(prompt));
  std::stringstream list(policies);
  std::string name;
  int rc = 0;
  while (std::getline(list, name, ',')) {
    KvPolicyRequest req{.policy = name};
    if (name != "none") req.budget = budget;
    absl::StatusOr<KvPolicySpec> spec = ParseKvPolicy(req, "--policies ");
    if (!spec.ok()) {
      std::fprintf(stderr, "%s\n", std::string(spec.status().message()).c_str());
      return 1;
    }
    absl::StatusOr<Result> r = RunPolicy(**runner, cfg, *spec, seqs, prompt, decode, chunk);
    if (!r.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), r.status().ToString().c_str());
      rc = 1;
      continue;
    }
    std::vector<double> ms = r->decode_ms;
    std::sort(ms.begin(), ms.end());
    const double med = ms.empty() ? 0 : ms[ms.size() / 2];
    const double page_mib = static_cast<double>((*runner)->page_bytes()) / (1 << 20);
    std::printf(
        "{\"bench\": \"kv_policy_gpu\", \"model\": \"llama3-8b-shape\", \"dtype\": \"bf16\", "
        "\"policy\": \"%s\", \"budget\": %lld, \"seqs\": %lld, \"prompt\": %lld, \"decode\": %lld, "
        "\"chunk\": %lld, \"kv_pages_per_seq_after_prefill\": %.1f, \"kv_pages_per_seq_peak\": "
        "%.1f, \"kv_mib_per_seq_after_prefill\": %.1f, \"kv_mib_per_seq_peak\": %.1f, "
        "\"prefill_s\": %.3f, \"decode_steps\": %zu, \"decode_ms_per_step\": %.3f, "
        "\"decode_tok_per_s\": %.0f, \"tokens_evicted\": %lld}\n",
        name.c_str(), static_cast<long long>(name == "none" ? 0 : budget),
        static_cast<long long>(seqs), static_cast<long long>(prompt),
        static_cast<long long>(decode), static_cast<long long>(chunk),
        static_cast<double>(r->pages_after_prefill) / seqs,
        static_cast<double>(r->peak_pages) / seqs,
        page_mib * r->pages_after_prefill / seqs, page_mib * r->peak_pages / seqs, r->prefill_s,
        ms.size(), med, med > 0 ? seqs / (med * 1e-3) : 0.0,
        static_cast<long long>(r->evicted));
    std::fflush(stdout);
  }
  return rc;
}

}  // namespace
}  // namespace longview

int main(int argc, char** argv) { return longview::Run(argc, argv); }
