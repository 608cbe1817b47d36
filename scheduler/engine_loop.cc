// The engine loop's thread: drain submissions, reap cancelled requests, schedule, run, sample,
// detokenize, check stop conditions, push deltas, keep metrics.
#include "scheduler/engine_loop.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <limits>
#include <random>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/cpu/cpu_model_runner.h"
#include "engine/runner/model_runner.h"
#include "engine/sampling/request_limits.h"
#include "engine/sampling/sequence_output.h"
#include "kvcache/kv_cache_manager.h"
#include "scheduler/scheduler.h"

namespace longview {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// vLLM's bucket bounds (vllm/v1/metrics/loggers.py).
Histogram MakeHistogram(std::vector<double> bounds) {
  Histogram h;
  h.bounds = std::move(bounds);
  h.counts.assign(h.bounds.size() + 1, 0);
  return h;
}

using request_limits::kMaxLogprobs;

struct Submission {
  GenerationRequest request;
  std::shared_ptr<RequestStream> stream;
  Clock::time_point arrival;
};

struct RequestState;

StopConditions StopConditionsOf(const GenerationRequest& req) {
  return {.stop = req.stop, .max_tokens = req.max_tokens, .ignore_eos = req.ignore_eos};
}

struct SeqState {
  SeqState(RequestState* r, int32_t i, int64_t id, const SamplingParams& p, const Tokenizer& tok,
           std::vector<int64_t> eos_ids, StopConditions conditions)
      : req(r),
        index(i),
        seq_id(id),
        sampler(p),
        out(tok, std::move(eos_ids), std::move(conditions)),
        device_seed(p.seed ? *p.seed : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()) {}
  RequestState* req;
  int32_t index;
  int64_t seq_id;
  Sampler sampler;
  SequenceOutput out;  // stop conditions and text
  std::vector<int32_t> output;
  uint64_t device_seed;  // seed of device-side sampling (the request's, or random)
  bool finished = false;
  Clock::time_point last_token;
};

struct RequestState {
  GenerationRequest request;
  std::shared_ptr<RequestStream> stream;
  Clock::time_point arrival;
  bool first_token_seen = false;
  std::vector<std::unique_ptr<SeqState>> seqs;  // by choice index
  int32_t num_finished = 0;
  int64_t completion_tokens = 0;
  int64_t cached_prompt_tokens = 0;
  RequestOutput pending;  // this step's output
  bool touched = false;
};

// The CPU backend over the model's host weights, when no runner is given. A model whose host
// weights were dropped (serve on a GPU) must come with its runner: a broken invariant.
std::shared_ptr<ModelRunner> DefaultCpuRunner(const LoadedModel& lm, const EngineLoopOptions& o) {
  absl::StatusOr<std::unique_ptr<CpuModelRunner>> r =
      CpuModelRunner::Create(lm, static_cast<int32_t>(o.num_kv_pages), o.page_size);
  if (!r.ok()) {
    std::fprintf(stderr, "EngineLoop: no runner given and no CPU backend: %s\n",
                 std::string(r.status().message()).c_str());
    std::abort();
  }
  return std::shared_ptr<ModelRunner>(std::move(*r));
}

}  // namespace

struct EngineLoop::Impl {
  Impl(const LoadedModel& lm, const EngineLoopOptions& o)
      : model(lm),
        opt(o),
        kv({.num_blocks = static_cast<int32_t>(o.num_kv_pages),
            .page_size = o.page_size,
            .enable_prefix_caching = o.enable_prefix_caching,
            .record_evictions = o.kv_store != nullptr && o.enable_prefix_caching,
            .record_registrations =
                o.kv_store != nullptr && o.enable_prefix_caching && o.kv_write_back}),
        sched({.max_num_batched_tokens = o.max_num_batched_tokens,
               .max_num_seqs = o.max_num_seqs,
               .long_prefill_token_threshold = o.long_prefill_token_threshold,
               .model_window = ModelReleasableWindow(lm.config)},
              &kv),
        runner_holder(o.runner != nullptr ? o.runner : DefaultCpuRunner(lm, o)),
        runner(*runner_holder) {
    if (o.kv_store != nullptr && o.enable_prefix_caching) kv.SetStagedPages(o.kv_store.get());
    eos_ids = EosTokenIds(lm.config.eos_token_ids, *lm.tokenizer);
    metrics.time_to_first_token =
        MakeHistogram({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
                       1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0});
    metrics.inter_token_latency =
        MakeHistogram({0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
                       7.5, 10.0, 20.0, 40.0, 80.0});
    metrics.e2e_request_latency =
        MakeHistogram({0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
                       30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0});
    metrics.num_kv_pages = o.num_kv_pages;
    metrics.num_free_kv_pages = o.num_kv_pages;
  }

  void Run();
  void Admit(Submission sub);
  void ReapCancelled();
  absl::Status Step();
  // Tiers: reads the lower-tier pages the first waiting sequences' prefixes may take.
  void StageWaitingPrefixes();
  // Tiers: the pages this step's allocations evicted go down (read before anything writes
  // them), then the staged pages prefix hits took are written into their device pages.
  // Starts the page moves of the step just applied (asynchronous: KvStorage::StartReadPages /
  // StartWritePages): evicted cached pages read into host buffers for demotion, staged pages
  // written into the device pages their prefix hits got.
  absl::Status MoveTierPages(StepPlan& step);
  // Hands finished demotion reads to the store (in order) and releases finished promotions'
  // buffers; with `wait`, waits for all of them first (idle, stopping).
  absl::Status FinishTransfers(bool wait);
  // After a step ran: starts the write-back of the blocks it filled (reads that do not hold up
  // later compute; an eviction of a page still being read fences it).
  absl::Status StartWriteBacks();
  // Reads `evicted` pages into fresh host buffers; `fence_compute` as KvStorage.
  absl::Status StartDemotion(std::vector<PageEviction> evicted, bool fence_compute);
  void SampleAndEmit(SeqState& s, std::span<const float> raw, Clock::time_point now);
  // Appends `tok` (chosen already) and its logprobs to `s`'s output; stop checks, metrics.
  void Emit(SeqState& s, int32_t tok, SequenceDelta& d, Clock::time_point now);
  // Asks the runner to sample rows on its device where the request allows it.
  void OfferDeviceSampling(StepPlan& step);
  SequenceDelta& DeltaFor(RequestState& r, int32_t index);
  void FlushOutputs(Clock::time_point now);
  void FinishRequest(RequestState& r, absl::Status status);
  // Removes a sequence from the scheduler; records a cache error for Run to act on.
  void FinishSeq(int64_t seq_id);
  void FailAll(const absl::Status& status);
  void PublishMetrics();
  // Recounts the sequences of waiting requests into num_waiting_seqs (read by Submit); returns
  // the waiting requests and, when `running` is given, the running ones.
  int64_t PublishWaiting(int64_t* running);

  const LoadedModel& model;
  const EngineLoopOptions opt;
  KvCacheManager kv;
  Scheduler sched;
  std::shared_ptr<ModelRunner> runner_holder;
  ModelRunner& runner;
  std::vector<int64_t> eos_ids;

  // Shared with frontends.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Submission> queue;
  bool started = false;
  bool stopping = false;
  int64_t num_waiting_seqs = 0;  // sequences of admitted requests not running (published by the loop)
  // Progress watchdog: when the loop last completed an iteration that moved (a step ran, or
  // nothing was left to do), in steady-clock nanoseconds.
  std::atomic<int64_t> last_progress_ns{0};
  bool has_work = false;  // the scheduler had work after the last iteration (under mu)
  int64_t steps_run = 0;  // loop thread: 1 when the last Step() executed a plan
  std::thread thread;
  mutable std::mutex metrics_mu;
  EngineMetrics metrics;

  // Loop thread only.
  std::vector<std::unique_ptr<RequestState>> requests;
  std::unordered_map<int64_t, SeqState*> by_seq;
  std::vector<float> scratch;
  StepResult result;
  int64_t prompt_tokens_total = 0, generation_tokens_total = 0;
  std::vector<double> ttft, itl, e2e;  // observations since the last publish
  absl::Status cache_error;  // a broken cache invariant seen while finishing a sequence
  // Page moves in flight, oldest first (one copy stream: they finish in order).
  struct PendingDemotion {
    KvStorage::TransferId id = 0;
    std::vector<PageRecord> records;  // bytes being filled by the transfer
    std::vector<int32_t> pages;       // device pages read
    // Once the read is complete: the records' checksums, computed on another thread while the
    // loop runs the next step (the host tier would otherwise compute them on this thread).
    std::future<void> checksums;
  };
  struct PendingPromotion {
    KvStorage::TransferId id = 0;
    std::vector<PageBytes> sources;  // kept alive until the copies have read them
  };
  std::deque<PendingDemotion> demotions_in_flight;
  std::deque<PendingPromotion> promotions_in_flight;
  // Device page -> the write-back read in flight from it (fenced when the page is reallocated).
  std::unordered_map<int32_t, KvStorage::TransferId> write_back_pages;
};

EngineLoop::EngineLoop(std::shared_ptr<const LoadedModel> model, const EngineLoopOptions& options)
    : model_(std::move(model)), impl_(std::make_unique<Impl>(*model_, options)) {}

EngineLoop::~EngineLoop() { Stop(); }

void EngineLoop::Start() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->started || impl_->stopping) return;
  impl_->started = true;
  impl_->thread = std::thread([this] { impl_->Run(); });
}

void EngineLoop::Stop() {
  std::deque<Submission> left;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    left.swap(impl_->queue);
  }
  for (Submission& s : left) {
    RequestOutput out;
    out.finished = true;
    out.status = absl::UnavailableError("engine stopped");
    s.stream->Push(std::move(out));
  }
  // Without a thread (never started), open requests were never admitted: nothing else to fail.
}

absl::Status EngineLoop::Validate(const GenerationRequest& request) const {
  const ModelConfig& cfg = model_->config;
  const int64_t num_prompt = static_cast<int64_t>(request.prompt_tokens.size());
  if (num_prompt == 0) return absl::InvalidArgumentError("prompt_tokens is empty");
  for (int32_t t : request.prompt_tokens) {
    if ((t < 0 && !(t == kEmbeddingToken && !request.embeddings.empty())) ||
        t >= cfg.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("prompt_tokens: token id %d out of range [0, %d)", t, cfg.vocab_size));
    }
  }
  if (!request.embeddings.empty()) {
    RETURN_IF_ERROR(
        ValidateEmbeddingRuns(request.embeddings, request.prompt_tokens, cfg.hidden_size));
  }
  if (request.max_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_tokens must be at least 0, got %d", request.max_tokens));
  }
  if (request.max_tokens == 0 && request.n != 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "n must be 1 when max_tokens is 0 (the prompt is computed, nothing sampled), got %d",
        request.n));
  }
  const AttentionMode& mode = *request.attention;
  RETURN_IF_ERROR(mode.CheckLength(num_prompt, request.max_tokens, cfg.max_position_embeddings));
  // Saturated: a streaming mode may take max_tokens up to INT64_MAX.
  const int64_t total = request.max_tokens > std::numeric_limits<int64_t>::max() - num_prompt
                            ? std::numeric_limits<int64_t>::max()
                            : num_prompt + request.max_tokens;
  const EngineLoopOptions& o = impl_->opt;
  const int64_t pages =
      mode.PagesHeld(total, o.page_size, o.max_num_batched_tokens, ModelReleasableWindow(cfg));
  if (pages > o.num_kv_pages) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "prompt_tokens + max_tokens = %d tokens cannot fit the KV cache (%d pages of %d)", total,
        o.num_kv_pages, o.page_size));
  }
  RETURN_IF_ERROR(ValidateSamplingParams(request.sampling));
  if (request.n < 1 || request.n > o.max_num_seqs) {
    return absl::InvalidArgumentError(
        absl::StrFormat("n must be in [1, %d], got %d", o.max_num_seqs, request.n));
  }
  // The n sequences together: they share the prompt's full pages (unless a window releases
  // them), each holds the rest. A request that can never fit is refused now rather than left
  // at the head of the queue.
  const int64_t shared =
      mode.ReleasableWindow(cfg) > 0 ? 0 : std::min(pages, num_prompt / o.page_size);
  const int64_t all_pages = pages + (request.n - 1) * (pages - shared);
  if (all_pages > o.num_kv_pages) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "n = %d sequences of prompt_tokens + max_tokens = %d tokens need %d KV pages, the cache "
        "holds %d",
        request.n, total, all_pages, o.num_kv_pages));
  }
  if (mode.hip() != nullptr && !impl_->runner.supports_hip()) {
    return absl::InvalidArgumentError(
        "attention.mode hip is not available on this server's backend yet (its pruning runs on "
        "the CPU backend only so far)");
  }
  // The default dense layers (the first four) apply to those a smaller model has; layers a
  // request names must exist.
  if (const HipAttention* hip = mode.hip();
      hip != nullptr && hip->dense_layers != HipAttention{}.dense_layers) {
    for (size_t i = 0; i < hip->dense_layers.size(); ++i) {
      if (hip->dense_layers[i] >= cfg.num_hidden_layers) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "attention.dense_layers[%d] = %d is not a layer of this model (layers 0 to %d)", i,
            hip->dense_layers[i], cfg.num_hidden_layers - 1));
      }
    }
  }
  const KvPolicySpec& policy = request.kv_policy.value_or(o.default_kv_policy);
  if (policy.enabled()) {
    const std::string name(KvPolicyName(policy.kind));
    if (!impl_->runner.supports_kv_policies()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "kv.policy %s is not available on this server's backend (KV policies need per-key "
          "attention statistics, which it does not produce)",
          name));
    }
    if (mode.name() != "dense") {
      return absl::InvalidArgumentError(absl::StrFormat(
          "kv.policy %s needs attention mode dense, got %s", name, mode.name()));
    }
    if (ModelReleasableWindow(cfg) > 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "kv.policy %s is not supported for a model whose every layer has a sliding window",
          name));
    }
    if (request.n != 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "n must be 1 with kv.policy %s (a policy compacts its sequence's pages in place), got %d",
          name, request.n));
    }
  }
  if (request.logprobs < -1 || request.logprobs > kMaxLogprobs) {
    return absl::InvalidArgumentError(
        absl::StrFormat("logprobs must be in [-1, %d], got %d", kMaxLogprobs, request.logprobs));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<RequestStream>> EngineLoop::Submit(GenerationRequest request) {
  std::vector<GenerationRequest> one;
  one.push_back(std::move(request));
  ASSIGN_OR_RETURN(std::vector<std::shared_ptr<RequestStream>> streams, SubmitAll(std::move(one)));
  return std::move(streams.front());
}

absl::StatusOr<std::vector<std::shared_ptr<RequestStream>>> EngineLoop::SubmitAll(
    std::vector<GenerationRequest> requests) {
  int64_t seqs = 0;
  for (const GenerationRequest& r : requests) {
    RETURN_IF_ERROR(Validate(r));
    seqs += r.n;
  }
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const GenerationRequest& r : requests) {
    streams.push_back(std::make_shared<RequestStream>(r.request_id));
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping) return absl::UnavailableError("engine stopped");
    int64_t waiting = impl_->num_waiting_seqs;
    for (const Submission& q : impl_->queue) waiting += q.request.n;
    if (waiting + seqs > impl_->opt.max_queue) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "request queue full (%d waiting sequences, this request adds %d, the limit is %d)",
          waiting, seqs, impl_->opt.max_queue));
    }
    if (impl_->queue.empty() && impl_->num_waiting_seqs == 0) {
      impl_->last_progress_ns = NowNs();  // the watchdog counts from the first work
    }
    for (size_t i = 0; i < requests.size(); ++i) {
      impl_->queue.push_back({std::move(requests[i]), streams[i], Clock::now()});
    }
  }
  impl_->cv.notify_all();
  return streams;
}

bool EngineLoop::Idle() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->queue.empty() && !impl_->has_work;
}

std::vector<std::string> EngineLoop::AttentionModeNames() const {
  std::vector<std::string> names;
  for (const AttentionModeEntry& e : AttentionModes()) {
    if (e.name == "hip" && !impl_->runner.supports_hip()) continue;
    names.emplace_back(e.name);
  }
  return names;
}

double EngineLoop::StalledSeconds() const {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->started || impl_->stopping) return 0;
    if (impl_->queue.empty() && !impl_->has_work) return 0;
  }
  return static_cast<double>(NowNs() - impl_->last_progress_ns.load()) * 1e-9;
}

EngineMetrics EngineLoop::Snapshot() const {
  EngineMetrics m;
  {
    std::lock_guard<std::mutex> lock(impl_->metrics_mu);
    m = impl_->metrics;
  }
  std::lock_guard<std::mutex> lock(impl_->mu);
  m.num_requests_waiting += static_cast<int64_t>(impl_->queue.size());
  return m;
}

void EngineLoop::Impl::Run() {
  while (true) {
    std::deque<Submission> incoming;
    {
      std::unique_lock<std::mutex> lock(mu);
      // Idle: block until a submission or Stop.
      cv.wait(lock, [&] { return stopping || !queue.empty() || sched.HasWork(); });
      if (stopping) break;
      incoming.swap(queue);
      // Admitted requests wait until the step below has run; count them now so that Submit
      // cannot slip past max_queue before PublishMetrics sets the exact figure.
      for (const Submission& s : incoming) num_waiting_seqs += s.request.n;
      has_work = has_work || !incoming.empty();
    }
    for (Submission& s : incoming) Admit(std::move(s));
    ReapCancelled();
    bool moved = true;
    if (sched.HasWork()) {
      absl::Status st = Step();
      if (!st.ok()) FailAll(st);
      // A step that ran nothing (every sequence waiting for pages) is not progress.
      moved = !st.ok() || steps_run > 0 || !sched.HasWork();
    }
    if (moved) last_progress_ns = NowNs();
    // Idle next: what was demoted reaches the tiers before the loop blocks.
    if (!sched.HasWork()) {
      absl::Status st = FinishTransfers(/*wait=*/true);
      if (!st.ok()) FailAll(st);
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      has_work = sched.HasWork();
    }
    if (!cache_error.ok()) {
      FailAll(absl::InternalError(absl::StrCat("KV cache: ", cache_error.message())));
      cache_error = absl::OkStatus();
    }
    PublishMetrics();
  }
  FailAll(absl::UnavailableError("engine stopped"));
  (void)FinishTransfers(/*wait=*/true);
  PublishMetrics();
}

void EngineLoop::Impl::Admit(Submission sub) {
  auto r = std::make_unique<RequestState>();
  r->request = std::move(sub.request);
  r->stream = std::move(sub.stream);
  r->arrival = sub.arrival;
  const int64_t id = sched.AddSequence({.prompt = r->request.prompt_tokens,
                                        .attention = r->request.attention,
                                        .kv_policy = r->request.kv_policy.value_or(
                                            opt.default_kv_policy),
                                        .num_forks = r->request.n - 1,
                                        .prompt_logits = r->request.on_prompt_logits != nullptr,
                                        .embeddings = r->request.embeddings.empty()
                                                          ? nullptr
                                                          : std::make_shared<const EmbeddingRuns>(
                                                                r->request.embeddings)});
  auto s = std::make_unique<SeqState>(r.get(), 0, id, r->request.sampling, *model.tokenizer,
                                      eos_ids, StopConditionsOf(r->request));
  by_seq[id] = s.get();
  r->seqs.push_back(std::move(s));
  prompt_tokens_total += static_cast<int64_t>(r->request.prompt_tokens.size());
  requests.push_back(std::move(r));
}

void EngineLoop::Impl::ReapCancelled() {
  for (auto& r : requests) {
    if (r->stream->cancelled()) FinishRequest(*r, absl::CancelledError("request cancelled"));
  }
  std::erase_if(requests, [](const auto& r) { return r->stream == nullptr; });
}

void EngineLoop::Impl::FinishRequest(RequestState& r, absl::Status status) {
  for (auto& s : r.seqs) {
    FinishSeq(s->seq_id);  // frees its blocks
    by_seq.erase(s->seq_id);
  }
  RequestOutput out;
  out.finished = true;
  out.status = std::move(status);
  out.prompt_tokens = static_cast<int64_t>(r.request.prompt_tokens.size());
  out.completion_tokens = r.completion_tokens;
  out.cached_prompt_tokens = r.cached_prompt_tokens;
  r.stream->Push(std::move(out));
  r.stream = nullptr;  // marks the request for removal
}

void EngineLoop::Impl::FailAll(const absl::Status& status) {
  for (auto& r : requests) {
    if (r->stream != nullptr) FinishRequest(*r, status);
  }
  requests.clear();
}

SequenceDelta& EngineLoop::Impl::DeltaFor(RequestState& r, int32_t index) {
  r.touched = true;
  for (SequenceDelta& d : r.pending.deltas) {
    if (d.index == index) return d;
  }
  r.pending.deltas.push_back(SequenceDelta{.index = index});
  return r.pending.deltas.back();
}

// Waiting sequences whose prefixes are staged from the lower tiers ahead of their admission.
constexpr int kStageAhead = 4;

void EngineLoop::Impl::StageWaitingPrefixes() {
  TieredKvStore* store = opt.kv_store.get();
  if (store == nullptr || !opt.enable_prefix_caching) return;
  std::vector<uint64_t> hashes;
  int looked = 0;
  for (const Sequence* s : sched.waiting()) {
    if (looked++ >= kStageAhead) break;
    if (s->prompt_logits || s->num_computed_tokens > 0) continue;
    for (const auto& [h, parent] : kv.BlocksPastDeviceHit(sched.View(*s))) {
      if (store->TierOf(h) < 0) break;  // a hit is a prefix: it stops at the first gap
      hashes.push_back(h);
    }
  }
  store->Stage(hashes);
}

absl::Status EngineLoop::Impl::StartDemotion(std::vector<PageEviction> evicted,
                                             bool fence_compute) {
  if (evicted.empty()) return absl::OkStatus();
  TieredKvStore* store = opt.kv_store.get();
  KvStorage& storage = runner.kv_storage();
  const size_t page_bytes = static_cast<size_t>(storage.page_bytes());
  // Straight into the host tier's memory (pinned on the CUDA backend); the store gets the pages
  // once the read is complete (FinishTransfers).
  PendingDemotion d;
  std::vector<std::byte*> dst;
  for (PageEviction& e : evicted) {
    PageRecord r{.hash = e.hash,
                 .parent_hash = e.parent_hash,
                 .tokens = std::move(e.tokens),
                 .bytes = PageBytes::Allocate(page_bytes, store->arena())};
    d.pages.push_back(e.page);
    dst.push_back(r.bytes.mutable_data());
    d.records.push_back(std::move(r));
  }
  ASSIGN_OR_RETURN(d.id, storage.StartReadPages(d.pages, dst, fence_compute));
  if (!fence_compute) {
    for (int32_t page : d.pages) write_back_pages[page] = d.id;
  }
  demotions_in_flight.push_back(std::move(d));
  return absl::OkStatus();
}

absl::Status EngineLoop::Impl::StartWriteBacks() {
  TieredKvStore* store = opt.kv_store.get();
  if (store == nullptr) return absl::OkStatus();
  std::vector<PageEviction> filled = kv.TakeRegistrations();
  // Promoted pages came from a tier; a block computed again may still be held there.
  std::erase_if(filled, [&](const PageEviction& e) { return store->TierOf(e.hash) >= 0; });
  return StartDemotion(std::move(filled), /*fence_compute=*/false);
}

absl::Status EngineLoop::Impl::MoveTierPages(StepPlan& step) {
  TieredKvStore* store = opt.kv_store.get();
  if (store == nullptr) return absl::OkStatus();
  KvStorage& storage = runner.kv_storage();
  const size_t page_bytes = static_cast<size_t>(storage.page_bytes());
  std::vector<PageEviction> evicted = kv.TakeEvictions();
  std::vector<PageEviction> unread;
  for (PageEviction& e : evicted) {
    if (auto it = write_back_pages.find(e.page); it != write_back_pages.end()) {
      // Being written back: this step's forward, which reuses the page, waits for that read.
      RETURN_IF_ERROR(storage.FenceTransfer(it->second));
      write_back_pages.erase(it);
    } else if (store->TierOf(e.hash) < 0) {
      unread.push_back(std::move(e));
    }
  }
  // Read before this step's forward reuses the pages (the storage fences the compute).
  RETURN_IF_ERROR(StartDemotion(std::move(unread), /*fence_compute=*/true));
  const std::vector<PagePromotion> promotions = sched.TakePromotions();
  if (!promotions.empty()) {
    PendingPromotion p;
    std::vector<int32_t> pages;
    std::vector<const std::byte*> src;
    for (const PagePromotion& promotion : promotions) {
      const PageRecord* r = store->Staged(promotion.hash);
      if (r == nullptr || r->bytes.size() != page_bytes) {
        return absl::InternalError(absl::StrFormat(
            "EngineLoop: a prefix hit took block %016x, which is not staged", promotion.hash));
      }
      p.sources.push_back(r->bytes);  // shares the buffer: no copy
      src.push_back(r->bytes.data());
      pages.push_back(promotion.page);
    }
    ASSIGN_OR_RETURN(p.id, storage.StartWritePages(pages, src));
    // Pages a tier returned unchecked are checked now, while their copies run; one that fails
    // never reaches a forward: the sequences holding it go back to the queue and recompute.
    std::vector<uint64_t> hashes;
    for (const PagePromotion& promotion : promotions) hashes.push_back(promotion.hash);
    const std::vector<uint64_t> bad = store->CheckStaged(hashes);
    std::vector<int32_t> bad_pages;
    for (const PagePromotion& promotion : promotions) {
      if (std::find(bad.begin(), bad.end(), promotion.hash) != bad.end()) {
        bad_pages.push_back(promotion.page);
        store->Rejected(promotion.hash);
      } else {
        store->Promoted(promotion.hash);
      }
    }
    promotions_in_flight.push_back(std::move(p));
    if (!bad_pages.empty()) {
      ASSIGN_OR_RETURN(const int64_t n, sched.Requeue(step, bad_pages));
      std::fprintf(stderr,
                   "longview: %zu KV page(s) from a tier failed their checksum; %lld sequence(s) "
                   "requeued to recompute them\n",
                   bad_pages.size(), static_cast<long long>(n));
    }
  }
  return absl::OkStatus();
}

absl::Status EngineLoop::Impl::FinishTransfers(bool wait) {
  KvStorage& storage = runner.kv_storage();
  while (!promotions_in_flight.empty()) {
    const KvStorage::TransferId id = promotions_in_flight.front().id;
    if (wait) {
      RETURN_IF_ERROR(storage.WaitTransfer(id));
    } else if (!storage.TransferDone(id)) {
      break;
    }
    promotions_in_flight.pop_front();
  }
  // Reads finish in order: each finished one gets its checksums started; the oldest whose
  // checksums are done goes to the store.
  for (PendingDemotion& d : demotions_in_flight) {
    if (d.checksums.valid()) continue;
    if (wait) {
      RETURN_IF_ERROR(storage.WaitTransfer(d.id));
    } else if (!storage.TransferDone(d.id)) {
      break;
    }
    d.checksums = std::async(std::launch::async, [records = &d.records] {
      for (PageRecord& r : *records) r.crc = PageChecksumOf(r);
    });
  }
  while (!demotions_in_flight.empty()) {
    PendingDemotion& d = demotions_in_flight.front();
    const KvStorage::TransferId id = d.id;
    if (!d.checksums.valid() ||
        (!wait && d.checksums.wait_for(std::chrono::seconds(0)) != std::future_status::ready)) {
      break;
    }
    d.checksums.get();
    for (int32_t page : d.pages) {
      if (auto it = write_back_pages.find(page); it != write_back_pages.end() && it->second == id) {
        write_back_pages.erase(it);
      }
    }
    opt.kv_store->Demote(std::move(d.records));
    demotions_in_flight.pop_front();
  }
  return absl::OkStatus();
}

absl::Status EngineLoop::Impl::Step() {
  steps_run = 0;
  RETURN_IF_ERROR(FinishTransfers(/*wait=*/false));
  StageWaitingPrefixes();
  const SchedulePlan plan = sched.Schedule();
  if (plan.empty()) {
    // Nothing fits right now (cannot last: Submit refuses what never fits); do not spin.
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, std::chrono::milliseconds(5), [&] { return stopping || !queue.empty(); });
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(StepPlan step, sched.Apply(plan));
  RETURN_IF_ERROR(MoveTierPages(step));
  if (step.empty()) return absl::OkStatus();
  if (runner.samples_on_device()) OfferDeviceSampling(step);
  RETURN_IF_ERROR(runner.Execute(step, result));
  sched.StepDone(step, result);
  steps_run = 1;
  RETURN_IF_ERROR(StartWriteBacks());
  if (opt.on_step) {
    for (const ScheduledSequence& ss : step.seqs) {
      int64_t pages = 0;
      for (const BlockLocation& b : kv.Locations(ss.seq_id)) pages += b.on_device() ? 1 : 0;
      opt.on_step(by_seq.at(ss.seq_id)->req->request.request_id,
                  ss.start_pos + static_cast<int64_t>(ss.token_ids.size()), pages);
    }
  }
  const Clock::time_point now = Clock::now();
  std::vector<SeqState*> targets;
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    const ScheduledSequence& ss = step.seqs[i];
    if (!ss.need_logits) continue;
    const int64_t id = ss.seq_id;
    SeqState* s = by_seq.at(id);
    const GenerationRequest& req = s->req->request;
    if (ss.all_logits) req.on_prompt_logits(ss.start_pos, result.Rows(i));
    // A token is sampled once every known token is computed (a scored prompt's earlier chunks
    // only report their logits).
    if (ss.start_pos + static_cast<int64_t>(ss.token_ids.size()) < sched.Get(id)->num_tokens()) {
      continue;
    }
    if (req.max_tokens == 0) {  // prompt only (scored, or cached): done once it is computed
      s->req->cached_prompt_tokens = std::max<int64_t>(0, sched.Get(id)->num_cached_tokens);
      SequenceDelta& d = DeltaFor(*s->req, s->index);
      d.finished = true;
      d.finish_reason = FinishReason::kLength;
      s->finished = true;
      ++s->req->num_finished;
      FinishSeq(id);
      by_seq.erase(id);
      continue;
    }
    targets.assign(1, s);
    // n > 1: the prompt's logits exist now; its siblings share its blocks from here on.
    for (const Sequence* seq = sched.Get(id); seq->num_pending_forks > 0;) {
      RequestState& r = *s->req;
      ASSIGN_OR_RETURN(const int64_t child_id, sched.Fork(id));
      const int32_t index = static_cast<int32_t>(r.seqs.size());
      SamplingParams p = r.request.sampling;
      if (p.seed) p.seed = *p.seed + static_cast<uint64_t>(index);
      auto child = std::make_unique<SeqState>(&r, index, child_id, p, *model.tokenizer, eos_ids,
                                              StopConditionsOf(r.request));
      by_seq[child_id] = child.get();
      targets.push_back(child.get());
      r.seqs.push_back(std::move(child));
    }
    if (result.sampled()) {
      // The runner sampled this row on its device (OfferDeviceSampling: no forks pending).
      SequenceDelta& d = DeltaFor(*s->req, s->index);
      if (s->req->request.logprobs >= 0) d.logprobs.push_back({result.tokens[i], result.token_logprobs[i]});
      Emit(*s, result.tokens[i], d, now);
      continue;
    }
    for (SeqState* t : targets) SampleAndEmit(*t, result.Row(i), now);
  }
  FlushOutputs(now);
  return absl::OkStatus();
}

void EngineLoop::Impl::SampleAndEmit(SeqState& s, std::span<const float> raw,
                                     Clock::time_point now) {
  RequestState& r = *s.req;
  const GenerationRequest& req = r.request;
  scratch.assign(raw.begin(), raw.end());
  const int32_t tok = s.sampler.Sample(scratch, req.prompt_tokens, s.output);
  SequenceDelta& d = DeltaFor(r, s.index);
  if (req.logprobs >= 0) {
    // Log-softmax of the raw logits (before penalties and temperature), as vLLM by default.
    float mx = -std::numeric_limits<float>::infinity();
    for (float x : raw) mx = std::max(mx, x);
    double sum = 0;
    for (float x : raw) sum += std::exp(static_cast<double>(x) - mx);
    const double lse = mx + std::log(sum);
    auto lp = [&](int32_t t) { return static_cast<float>(raw[t] - lse); };
    d.logprobs.push_back({tok, lp(tok)});
    std::vector<int32_t> ids(raw.size());
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i);
    const size_t k = std::min<size_t>(req.logprobs, ids.size());
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
      return raw[a] > raw[b] || (raw[a] == raw[b] && a < b);
    });
    std::vector<TokenLogprob> top;
    for (size_t i = 0; i < k; ++i) top.push_back({ids[i], lp(ids[i])});
    d.top_logprobs.push_back(std::move(top));
  }
  Emit(s, tok, d, now);
}

void EngineLoop::Impl::OfferDeviceSampling(StepPlan& step) {
  for (ScheduledSequence& ss : step.seqs) {
    if (!ss.need_logits || ss.all_logits) continue;
    auto it = by_seq.find(ss.seq_id);
    if (it == by_seq.end()) return;
    const SeqState& s = *it->second;
    const GenerationRequest& req = s.req->request;
    const SamplingParams& p = req.sampling;
    const Sequence* seq = sched.Get(ss.seq_id);
    // Penalties, min-p and top logprobs need the whole row on the host; so do forks (n > 1),
    // whose siblings draw their own tokens from the same row.
    if (p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 ||
        p.min_p > 0.0 || req.logprobs > 0 || seq == nullptr || seq->num_pending_forks > 0) {
      continue;
    }
    ss.device_sampling = DeviceSampling{.temperature = static_cast<float>(p.temperature),
                                        .top_k = p.top_k,
                                        .top_p = static_cast<float>(p.top_p),
                                        .seed = s.device_seed,
                                        .counter = s.output.size()};
  }
}

void EngineLoop::Impl::Emit(SeqState& s, int32_t tok, SequenceDelta& d, Clock::time_point now) {
  RequestState& r = *s.req;
  s.output.push_back(tok);
  sched.AppendToken(s.seq_id, tok);
  d.token_ids.push_back(tok);
  ++r.completion_tokens;
  ++generation_tokens_total;
  if (!r.first_token_seen) {
    r.first_token_seen = true;
    if (const Sequence* seq = sched.Get(s.seq_id); seq != nullptr) {
      r.cached_prompt_tokens = std::max<int64_t>(0, seq->num_cached_tokens);
    }
    ttft.push_back(Seconds(now - r.arrival));
  } else if (s.output.size() > 1) {
    itl.push_back(Seconds(now - s.last_token));
  }
  s.last_token = now;

  d.text += s.out.Append(tok);
  if (!s.out.finished()) return;
  const FinishReason reason = s.out.reason();
  d.finished = true;
  d.finish_reason = reason;
  s.finished = true;
  ++r.num_finished;
  FinishSeq(s.seq_id);  // blocks go back now
  by_seq.erase(s.seq_id);
}

void EngineLoop::Impl::FinishSeq(int64_t seq_id) {
  // A broken reference count in the cache: the step fails every request (Run).
  if (absl::Status st = sched.Finish(seq_id); !st.ok() && cache_error.ok()) cache_error = st;
}

void EngineLoop::Impl::FlushOutputs(Clock::time_point now) {
  std::vector<std::pair<std::shared_ptr<RequestStream>, RequestOutput>> deliveries;
  for (auto& rp : requests) {
    RequestState& r = *rp;
    if (!r.touched) continue;
    r.touched = false;
    RequestOutput out = std::move(r.pending);
    r.pending = RequestOutput{};
    out.prompt_tokens = static_cast<int64_t>(r.request.prompt_tokens.size());
    out.completion_tokens = r.completion_tokens;
    out.cached_prompt_tokens = r.cached_prompt_tokens;
    out.finished = r.num_finished == r.request.n;
    if (out.finished) {
      e2e.push_back(Seconds(now - r.arrival));
      deliveries.emplace_back(std::move(r.stream), std::move(out));
      r.stream = nullptr;
    } else {
      deliveries.emplace_back(r.stream, std::move(out));
    }
  }
  std::erase_if(requests, [](const auto& r) { return r->stream == nullptr; });
  // Publish the step's state (the waiting count Submit reads, KV pages, counters, latencies)
  // before its output reaches clients, so a client reacting to the output sees its effects.
  PublishMetrics();
  for (auto& [stream, out] : deliveries) stream->Push(std::move(out));
}

int64_t EngineLoop::Impl::PublishWaiting(int64_t* running) {
  int64_t num_running = 0, waiting = 0, waiting_seqs = 0;
  for (const auto& r : requests) {
    bool any_running = false;
    for (const auto& s : r->seqs) {
      const Sequence* seq = sched.Get(s->seq_id);
      any_running = any_running || (seq != nullptr && seq->status == SequenceStatus::kRunning);
    }
    if (any_running) {
      ++num_running;
    } else {
      ++waiting;
      waiting_seqs += r->request.n;
    }
  }
  std::lock_guard<std::mutex> lock(mu);
  num_waiting_seqs = waiting_seqs;
  if (running != nullptr) *running = num_running;
  return waiting;
}

void EngineLoop::Impl::PublishMetrics() {
  int64_t running = 0;
  const int64_t waiting = PublishWaiting(&running);
  std::lock_guard<std::mutex> lock(metrics_mu);
  metrics.num_requests_running = running;
  metrics.num_requests_waiting = waiting;
  metrics.kv_cache_usage_perc = kv.Usage();
  metrics.prefix_cache_queries = kv.prefix_cache_queries();
  metrics.prefix_cache_hits = kv.prefix_cache_hits();
  metrics.prompt_tokens_total = prompt_tokens_total;
  metrics.generation_tokens_total = generation_tokens_total;
  metrics.num_preemptions_total = sched.num_preemptions();
  metrics.num_free_kv_pages = kv.NumFreeBlocks();
  if (opt.kv_store != nullptr) metrics.kv_tiers = opt.kv_store->Report();
  metrics.kv_policies.clear();
  const auto& counts = sched.policy_counts();
  for (size_t k = 1; k < counts.size(); ++k) {  // 0 is "none"
    metrics.kv_policies.push_back({.policy = std::string(KvPolicyNames()[k]),
                                   .tokens_evicted = counts[k].tokens_evicted,
                                   .pages_freed = counts[k].blocks_freed});
  }
  if (opt.kv_store != nullptr && opt.kv_store->arena() != nullptr) {
    const PageArena& a = *opt.kv_store->arena();
    metrics.kv_host_memory_kind = a.kind();
    metrics.kv_host_memory_bytes = a.slab_bytes();
    metrics.kv_host_memory_used_bytes = a.blocks_in_use() * a.block_bytes();
    metrics.kv_host_memory_fallbacks = a.heap_fallbacks();
  }
  for (double v : ttft) metrics.time_to_first_token.Observe(v);
  for (double v : itl) metrics.inter_token_latency.Observe(v);
  for (double v : e2e) metrics.e2e_request_latency.Observe(v);
  ttft.clear();
  itl.clear();
  e2e.clear();
}

}  // namespace longview
