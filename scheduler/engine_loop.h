// The engine loop: a thread that owns the model runner, the KV cache and the scheduler, and
// serves generation requests submitted from any thread (HTTP and gRPC frontends).
//
// Frontends talk to it through a thread-safe submission queue and one output channel per
// request. Every step the loop admits new requests, plans a batch (decode tokens first, then
// prefill chunks within the token budget), runs the model, samples, detokenizes, checks stop
// conditions and pushes text deltas to the channels. A cancelled request (client gone) has its
// blocks freed at the next step.
//
//   EngineLoop loop(std::move(model), EngineLoopOptions{});
//   loop.Start();
//   ASSIGN_OR_RETURN(auto stream, loop.Submit(std::move(request)));
//   RequestOutput out;
//   while (stream->Next(&out)) { ... out.deltas ... if (out.finished) break; }
//   loop.Stop();
// Thread-safety: Submit, Cancel, Snapshot and RequestStream methods are safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "scheduler/generator.h"
#include "engine/runner/model_runner.h"
#include "engine/sampling/sampler.h"
#include "kvcache/kv_policy.h"
#include "kvcache/tiered_kv_store.h"

namespace longview {

struct GenerationRequest {
  std::string request_id;              // unique; made by the frontend
  std::vector<int32_t> prompt_tokens;  // BOS included as the tokenizer says
  // Rows in place of the token embeddings where prompt_tokens holds kEmbeddingToken
  // (engine/runner/input_embeddings.h): a session's appended frames.
  EmbeddingRuns embeddings;
  SamplingParams sampling;
  // 0: the prompt is computed (its KV cached, its logits scored) and nothing is sampled; the
  // request finishes with one empty delta (sessions' append; the evaluator). Needs n = 1.
  int64_t max_tokens = 16;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  int32_t n = 1;              // completions sharing the prompt's blocks
  int32_t logprobs = -1;      // -1: none; k >= 0: chosen token's logprob plus the top k
  Attention attention;        // attention mode of this request
  // KV budget policy of this request (kvcache/kv_policy.h); unset: the loop's default.
  std::optional<KvPolicySpec> kv_policy;
  // In-process scoring (the evaluator; no API sets it): called on the engine loop's thread with
  // the logits of prompt positions [first_position, first_position + rows) as the prompt is
  // computed, `logits` being [rows][vocab]. A position may come again after a preemption. The
  // prompt is never served from the prefix cache.
  std::function<void(int64_t first_position, std::span<const float> logits)> on_prompt_logits;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
};

// What one sequence (choice) produced since the last output.
struct SequenceDelta {
  int32_t index = 0;                // choice index in [0, n)
  std::string text;                 // new text (whole UTF-8, stop strings excluded)
  std::vector<int32_t> token_ids;   // new tokens
  std::vector<TokenLogprob> logprobs;                    // one per new token, if requested
  std::vector<std::vector<TokenLogprob>> top_logprobs;   // one list per new token, if requested
  bool finished = false;
  FinishReason finish_reason = FinishReason::kLength;
};

struct RequestOutput {
  std::vector<SequenceDelta> deltas;
  bool finished = false;        // every sequence finished (or the request failed)
  absl::Status status;          // non-OK if the engine failed the request
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // so far, all sequences
  int64_t cached_prompt_tokens = 0;  // prompt tokens served from the prefix cache
};

// A request's output channel. The engine pushes, one frontend thread pulls.
class RequestStream {
 public:
  // Blocks until output is available; false when the stream is closed and drained. Outputs that
  // pile up between pulls are merged.
  bool Next(RequestOutput* out);
  // Like Next, giving up after `timeout` (returns false with *timed_out = true).
  bool NextFor(RequestOutput* out, std::chrono::milliseconds timeout, bool* timed_out);
  // Asks the engine to stop this request and free its blocks at the next step.
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  const std::string& request_id() const { return request_id_; }

  // Engine side.
  explicit RequestStream(std::string request_id) : request_id_(std::move(request_id)) {}
  void Push(RequestOutput out);

 private:
  std::string request_id_;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestOutput> pending_;
  bool closed_ = false;
};

struct EngineLoopOptions {
  int64_t max_num_batched_tokens = 2048;  // token budget per step
  int64_t max_num_seqs = 256;             // running sequences at most
  int64_t max_queue = 1024;               // waiting sequences (n per request) beyond which
                                          // Submit refuses
  int64_t page_size = 16;
  int64_t num_kv_pages = 4096;            // KV pages in the pool
  bool enable_prefix_caching = true;
  // Most prefill tokens one sequence gets per step (0 = up to the whole budget).
  int64_t long_prefill_token_threshold = 0;
  // The backend; null = the CPU backend over num_kv_pages host pages. A given runner must hold
  // at least num_kv_pages pages of page_size tokens.
  std::shared_ptr<ModelRunner> runner;
  // The tiers below the device pool (host memory, disk), built for the runner's page bytes;
  // null = none. Cached pages leaving the pool are demoted to it, and prefix hits continue
  // through it (kvcache/tiered_kv_store.h). Used by the loop's thread only.
  std::shared_ptr<TieredKvStore> kv_store;
  // With kv_store: copy every block to the tiers as soon as its page is full (after the step
  // that filled it, beside later compute), so that eviction costs nothing and the disk tier
  // holds pages before the pool gives them up; false: copy a page only when it is evicted.
  // Off by default: on an H200 it cost 4-9% of decode throughput at B=64 (8 MiB per step;
  // docs/bench/kv_tiers_gpu.md), paid even when nothing is ever evicted.
  bool kv_write_back = false;
  // The KV policy of requests that name none (`--kv-policy`); none by default.
  KvPolicySpec default_kv_policy;
  // Called on the loop's thread after each step ran, for every sequence in it: its request, the
  // tokens computed so far and the device KV pages it holds (KV memory in tests and benchmarks).
  std::function<void(const std::string& request_id, int64_t num_computed_tokens,
                      int64_t kv_pages)>
      on_step;
};

// A Prometheus-style histogram: counts[i] observations <= bounds[i] (not cumulative; the last
// count is for +Inf), their sum and number.
struct Histogram {
  std::vector<double> bounds;
  std::vector<int64_t> counts;  // bounds.size() + 1
  double sum = 0;
  int64_t count = 0;
  void Observe(double v);
};

// Counters and gauges for /metrics (vLLM's names, prefixed longview: by the server).
struct EngineMetrics {
  int64_t num_requests_running = 0;
  int64_t num_requests_waiting = 0;
  double kv_cache_usage_perc = 0;  // 0..1
  int64_t prefix_cache_queries = 0;  // tokens looked up
  int64_t prefix_cache_hits = 0;     // tokens found
  int64_t prompt_tokens_total = 0;
  int64_t generation_tokens_total = 0;
  int64_t num_preemptions_total = 0;
  int64_t num_free_kv_pages = 0;
  int64_t num_kv_pages = 0;
  // The tiers below the device pool (empty without them): occupancy, hits, promotions,
  // demotions, checksum failures.
  std::vector<TierReport> kv_tiers;
  // The tiers' host memory (PageArena): pinned on the CUDA backend, allocated at start-up.
  std::string kv_host_memory_kind;        // "pinned", "heap"; empty: no arena
  int64_t kv_host_memory_bytes = 0;       // the slab
  int64_t kv_host_memory_used_bytes = 0;  // blocks held (tier pages, pages in flight)
  int64_t kv_host_memory_fallbacks = 0;   // allocations that found no free block (heap)
  // KV policies, per policy that ran (indexed by KvPolicyKind): tokens evicted, pages freed.
  struct KvPolicyCounts {
    std::string policy;
    int64_t tokens_evicted = 0;
    int64_t pages_freed = 0;
  };
  std::vector<KvPolicyCounts> kv_policies;
  // Latencies since start, seconds.
  Histogram time_to_first_token;
  Histogram inter_token_latency;
  Histogram e2e_request_latency;
};

class EngineLoop {
 public:
  EngineLoop(std::shared_ptr<const LoadedModel> model, const EngineLoopOptions& options);
  ~EngineLoop();  // stops the thread

  void Start();
  // Finishes every open request with an Unavailable status and joins the thread.
  void Stop();

  // InvalidArgument for a bad request (naming the field: prompt length + max_tokens beyond the
  // model's context, sampling values, n < 1, ...); ResourceExhausted when the queue is full.
  absl::StatusOr<std::shared_ptr<RequestStream>> Submit(GenerationRequest request);
  // Several requests (one API call's prompts), admitted or refused whole: every one is
  // validated first, and the queue takes all of them or none (ResourceExhausted).
  absl::StatusOr<std::vector<std::shared_ptr<RequestStream>>> SubmitAll(
      std::vector<GenerationRequest> requests);

  // Seconds since the loop last made progress while it had work (0 when idle or moving). A
  // loop that has work and stays still (a stuck step, a request that can never be scheduled)
  // grows this; health checks turn unhealthy past a threshold.
  double StalledSeconds() const;
  // True when nothing is queued and the scheduler has no work (every request finished).
  bool Idle() const;

  EngineMetrics Snapshot() const;
  const LoadedModel& model() const { return *model_; }
  // The attention modes requests may name on this loop's backend, in the registry's order.
  std::vector<std::string> AttentionModeNames() const;

 private:
  // Everything Submit checks of one request (InvalidArgument naming the field).
  absl::Status Validate(const GenerationRequest& request) const;

  struct Impl;
  std::shared_ptr<const LoadedModel> model_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longview
