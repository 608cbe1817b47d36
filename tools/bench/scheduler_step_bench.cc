// Scheduler CPU time per step at 256 running sequences, model time excluded: Schedule, Apply
// and the token bookkeeping run against a runner that does nothing. Target: < 1 ms per step.
//
//   build/tools/bench/scheduler_step_bench [--seqs 256] [--prompt 512] [--steps 512]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kvcache/kv_cache_manager.h"
#include "scheduler/scheduler.h"

namespace longview {
namespace {

using Clock = std::chrono::steady_clock;

struct Stats {
  std::vector<double> us;
  void Print(const char* name) {
    std::sort(us.begin(), us.end());
    double sum = 0;
    for (double v : us) sum += v;
    std::printf("%-34s steps %5zu  mean %8.1f us  p50 %8.1f us  p99 %8.1f us  max %8.1f us\n", name,
                us.size(), sum / us.size(), us[us.size() / 2], us[us.size() * 99 / 100], us.back());
  }
};

// Runs `steps` steps; every sequence that gets logits receives token (pos * 31 % 32000) and
// restarts (finish + resubmit) after `max_tokens`.
void Run(const char* name, int seqs, int prompt_len, int steps, int64_t num_blocks, int64_t budget,
         bool shared_prefix) {
  KvCacheManager kv({.num_blocks = static_cast<int32_t>(num_blocks), .page_size = 16});
  Scheduler sched({.max_num_batched_tokens = budget, .max_num_seqs = seqs}, &kv);
  const int64_t max_tokens = 256;
  auto add = [&](int i) {
    std::vector<int32_t> prompt(prompt_len);
    for (int j = 0; j < prompt_len; ++j)
      prompt[j] = shared_prefix && j < prompt_len / 2 ? j : (i * 7919 + j) % 32000;
    return sched.AddSequence({.prompt = std::move(prompt)});
  };
  std::vector<int64_t> generated(1 << 20, 0);
  for (int i = 0; i < seqs; ++i) add(i);
  // Warm up until every sequence is running (prefill done).
  for (int i = 0; i < 1000 && sched.NumWaiting() > 0; ++i) {
    auto plan = sched.Schedule();
    auto step = sched.Apply(plan);
    for (auto& s : step->seqs) {
      if (s.need_logits) sched.AppendToken(s.seq_id, 5);
    }
  }
  Stats st;
  int next = seqs;
  for (int i = 0; i < steps; ++i) {
    const auto t0 = Clock::now();
    SchedulePlan plan = sched.Schedule();
    absl::StatusOr<StepPlan> step = sched.Apply(plan);
    if (!step.ok()) {
      std::fprintf(stderr, "%s\n", step.status().ToString().c_str());
      std::exit(1);
    }
    // (The model would run here.)
    const auto t1 = Clock::now();
    std::vector<int64_t> done;
    for (const ScheduledSequence& s : step->seqs) {
      if (!s.need_logits) continue;
      sched.AppendToken(s.seq_id, static_cast<int32_t>((s.start_pos * 31) % 32000));
      if (++generated[s.seq_id] >= max_tokens) done.push_back(s.seq_id);
    }
    for (int64_t id : done) {
      if (absl::Status st = sched.Finish(id); !st.ok()) {
        std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
        return;
      }
    }
    const auto t2 = Clock::now();
    for (size_t j = 0; j < done.size(); ++j) add(next++);  // new requests: frontend work, untimed
    st.us.push_back(std::chrono::duration<double, std::micro>((t1 - t0) + (t2 - t1)).count());
  }
  st.Print(name);
  std::printf("%-34s running %lld waiting %lld preemptions %lld prefix hits %lld/%lld tokens\n", "",
              static_cast<long long>(sched.NumRunning()),
              static_cast<long long>(sched.NumWaiting()),
              static_cast<long long>(sched.num_preemptions()),
              static_cast<long long>(kv.prefix_cache_hits()),
              static_cast<long long>(kv.prefix_cache_queries()));
}

}  // namespace
}  // namespace longview

int main(int argc, char** argv) {
  int seqs = 256, prompt = 512, steps = 512;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seqs")) seqs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--prompt")) prompt = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
  }
  const int64_t per_seq = (prompt + 256 + 15) / 16 + 1;
  std::printf("scheduler step CPU time, %d sequences, %d-token prompts, page 16\n", seqs, prompt);
  longview::Run("decode, ample blocks", seqs, prompt, steps, per_seq * seqs, 2048, false);
  longview::Run("decode + refills, shared prefixes", seqs, prompt, steps, per_seq * seqs, 2048,
                true);
  longview::Run("decode under block pressure", seqs, prompt, steps, per_seq * seqs * 3 / 4, 2048,
                false);
  return 0;
}
