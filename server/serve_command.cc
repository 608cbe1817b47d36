// `longview serve`.
#include "server/serve_command.h"

#include <signal.h>
#include <sys/resource.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include "scheduler/generator.h"
#include "kernels/cpu/ops.h"
#include "scheduler/engine_loop.h"
#include "engine/text/chat_template.h"
#include "absl/strings/str_format.h"
#include "server/api_key.h"
#include "server/grpc_service.h"
#include "server/http_server.h"
#include "server/openai_service.h"
#include "server/request_pump.h"
#include "server/kv_tiers_setup.h"
#include "server/runner_factory.h"

namespace longview {
namespace {

// Thousands of open connections need more descriptors than the usual soft limit of 1024.
void RaiseFileLimit() {
  rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

// The embedded model's folder name (when --model is not given).
std::string FolderName(const std::string& model_dir) {
  std::filesystem::path p(model_dir);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();
  std::string name = p.filename().string();
  return name.empty() ? "longview" : name;
}

int Fail(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  return 1;
}

}  // namespace

void AddKvPolicyFlags(CLI::App* cmd, KvPolicyRequest* r) {
  std::string names;
  for (std::string_view n : KvPolicyNames()) names += (names.empty() ? "" : " | ") + std::string(n);
  cmd->add_option("--kv-policy", r->policy, "KV budget policy: " + names)->capture_default_str();
  const std::pair<const char*, std::optional<int64_t>*> ints[] = {
      {"budget", &r->budget},     {"sinks", &r->sinks},   {"window", &r->window},
      {"interval", &r->interval}, {"kernel", &r->kernel}};
  for (auto [name, field] : ints) {
    cmd->add_option_function<int64_t>(
        std::string("--kv-") + name, [field](const int64_t& v) { *field = v; },
        std::string("KV policy parameter `") + name + "` (docs/policies.md)");
  }
  cmd->add_option_function<double>(
      "--kv-alpha", [r](const double& v) { r->alpha = v; },
      "KV policy parameter `alpha` (lazy; docs/policies.md)");
}

CLI::App* AddServeCommand(CLI::App& app, ServeArgs* a) {
  auto* s = app.add_subcommand("serve", "Serve the OpenAI-compatible HTTP API (and gRPC)");
  s->add_option("--model", a->model, "Hugging Face model folder, or a .gguf file")
      ->capture_default_str()
      ->each([a](const std::string&) { a->model_given = true; });
  s->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  s->add_option("--port", a->port, "HTTP port (0 = any free port)")->capture_default_str();
  s->add_option("--grpc-port", a->grpc_port, "gRPC port (0 = no gRPC server)")
      ->capture_default_str();
  s->add_option(
       "--api-key", a->api_keys,
       "Require 'Authorization: Bearer KEY' on /v1/ routes and gRPC calls (default: "
       "$LONGVIEW_API_KEY when set; neither: no auth). May be given several times: any of the "
       "keys is accepted, and sessions belong to the key that made them. An empty key is refused")
      ->expected(1)
      ->take_all();
  s->add_option("--api-key-file", a->api_key_file,
                "More API keys, one per line (blank lines and '#' comments skipped)");
  s->add_option("--device", a->device, "auto | cpu | cuda (auto: cuda where a GPU is present)")
      ->capture_default_str();
  s->add_option("--dtype", a->dtype, "CUDA: bf16 | fp16 (weights, activations, KV pages)")
      ->capture_default_str();
  s->add_option("--gpu-memory-utilization", a->gpu_memory_utilization,
                "CUDA: share of the GPU's memory for weights, activations and KV pages")
      ->capture_default_str();
  s->add_option("--served-model-name", a->served_model_name,
                "Model id of the API (default: the --model argument as given)");
  s->add_option("--max-num-seqs", a->max_num_seqs, "Running sequences at most")
      ->capture_default_str();
  s->add_option("--max-num-batched-tokens", a->max_num_batched_tokens, "Token budget per step")
      ->capture_default_str();
  s->add_option("--num-kv-pages", a->num_kv_pages, "KV pages in the pool (0 = CPU: 4096, CUDA: from free memory)")
      ->capture_default_str();
  s->add_option("--kv-host-memory-gib", a->kv_host_memory_gib,
                "Host memory (GiB, a decimal number) for KV pages leaving the device pool; prefix "
                "hits are served from it (0: no host tier)")
      ->capture_default_str();
  s->add_option("--kv-host-verify", a->kv_host_verify,
                "Check each host-tier page's CRC32C when a prefix hit takes it (pages pushed to "
                "disk are checked either way; false saves ~30 ms per GiB of hit)")
      ->capture_default_str();
  AddKvPolicyFlags(s, &a->kv_policy);
  s->add_option("--kv-write-back", a->kv_write_back,
                "Copy every full KV page to the tiers as soon as it is full, beside compute: "
                "eviction is then free and the disk tier holds pages early, for 4-9% of decode "
                "throughput (H200, B=64); false: copy a page when the device pool evicts it")
      ->capture_default_str();
  s->add_option("--kv-disk-path", a->kv_disk_path,
                "Folder of a RocksDB tier for KV pages below the host tier; it persists across "
                "restarts (empty: no disk tier)");
  s->add_option("--kv-disk-gib", a->kv_disk_gib, "Size of the disk tier in GiB (with --kv-disk-path)")
      ->capture_default_str();
  s->add_option("--max-queue", a->max_queue,
                "Waiting sequences (prompts x n) beyond which requests get 429")
      ->capture_default_str();
  s->add_option("--max-seqs-per-request", a->max_seqs_per_request,
                "Sequences (prompts x n) one request may make; more gets 400")
      ->capture_default_str();
  s->add_option("--max-prompt-bytes", a->max_prompt_bytes,
                "Prompt text (or chat message contents) beyond this many bytes gets 400 before "
                "tokenizing (0 = 32 bytes per context token, at least 64 KiB)")
      ->capture_default_str();
  s->add_option("--max-sessions-per-key", a->max_sessions_per_key,
                "Sessions (/v1/sessions) one API key may hold at once")
      ->capture_default_str();
  s->add_option("--session-max-tokens", a->session_max_tokens,
                "Tokens one session may hold (its history is kept in host memory, 4 bytes each)")
      ->capture_default_str();
  s->add_option("--session-max-embedding-bytes", a->session_max_embedding_bytes,
                "Bytes of appended embedding rows one session may hold (kept in host memory as "
                "float32, to recompute what the KV cache lost)")
      ->capture_default_str();
  s->add_option("--session-max-append-bytes", a->session_max_append_bytes,
                "Bytes of one session append's body at most (413 beyond)")
      ->capture_default_str();
  s->add_option("--frontend-threads", a->frontend_threads,
                "Threads parsing and tokenizing requests (bounds concurrent tokenization)")
      ->capture_default_str();
  s->add_option("--stats-interval", a->stats_interval,
                "Seconds between stats lines on stderr (throughput, running, waiting, KV usage); "
                "0: none")
      ->capture_default_str();
  s->add_flag("--metrics-require-key", a->metrics_require_key,
              "/metrics asks for the API key like the /v1/ routes");
  s->add_option("--shutdown-timeout", a->shutdown_timeout,
                "On SIGTERM/SIGINT, seconds open requests get to finish before being cancelled")
      ->capture_default_str();
  s->add_option("--health-stall-seconds", a->health_stall_seconds,
                "/health and gRPC health turn unhealthy when the engine has had work without "
                "progress this long")
      ->capture_default_str();
  s->add_option("--max-body-bytes", a->max_body_bytes, "Larger request bodies get 413")
      ->capture_default_str();
  s->add_option("--max-connections", a->max_connections,
                "Open HTTP connections at most; more are answered 503 and closed (gRPC apart)")
      ->capture_default_str();
  s->add_option("--max-inflight-body-bytes", a->max_inflight_body_bytes,
                "Request bodies being read at once, in bytes in all; beyond: 503 with Retry-After")
      ->capture_default_str();
  s->add_option("--write-timeout", a->write_timeout_seconds,
                "Seconds a response write may stall before the client is disconnected (its "
                "request is cancelled)")
      ->capture_default_str();
  s->add_option("--page-size", a->page_size, "KV page size in tokens")->capture_default_str();
  s->add_option("--chat-template", a->chat_template,
                "A Jinja template file, or a built-in: llama2 | llama3 | mistral | chatml | plain "
                "(default: the model's chat_template.jinja or tokenizer_config.json, else plain)");
  s->add_option("--io-threads", a->io_threads, "HTTP io threads")->capture_default_str();
  s->add_option("--pump-threads", a->pump_threads, "Threads moving tokens to HTTP responses")
      ->capture_default_str();
  s->add_option("--threads", a->threads, "CPU compute threads (0 = all cores)");
  return s;
}

int RunServe(const ServeArgs& a) {
  if (a.dtype != "bf16" && a.dtype != "fp16") {
    return Fail("--dtype must be bf16 or fp16, got '" + a.dtype + "'");
  }
  if (a.device != "auto" && a.device != "cpu" && a.device != "cuda") {
    return Fail("--device must be auto, cpu or cuda, got '" + a.device + "'");
  }
  if (a.port < 0 || a.port > 65535) return Fail("--port must be in [0, 65535]");
  if (a.grpc_port > 65535) return Fail("--grpc-port must be at most 65535");
  if (a.max_body_bytes < 1) return Fail("--max-body-bytes must be at least 1");
  if (!(a.stats_interval >= 0)) return Fail("--stats-interval must be >= 0");
  if (!(a.shutdown_timeout >= 0)) return Fail("--shutdown-timeout must be >= 0");
  if (a.max_prompt_bytes < 0) return Fail("--max-prompt-bytes must be >= 0");
  if (a.frontend_threads < 1) return Fail("--frontend-threads must be at least 1");
  if (a.max_sessions_per_key < 0) return Fail("--max-sessions-per-key must be >= 0");
  if (a.session_max_tokens < 1) return Fail("--session-max-tokens must be at least 1");
  if (a.session_max_embedding_bytes < 0) {
    return Fail("--session-max-embedding-bytes must be at least 0");
  }
  if (a.session_max_append_bytes < 1) return Fail("--session-max-append-bytes must be at least 1");
  if (a.max_seqs_per_request < 1) return Fail("--max-seqs-per-request must be at least 1");
  if (!(a.health_stall_seconds > 0)) return Fail("--health-stall-seconds must be positive");
  if (a.max_connections < 1) return Fail("--max-connections must be at least 1");
  if (a.max_inflight_body_bytes < 1) return Fail("--max-inflight-body-bytes must be at least 1");
  if (a.write_timeout_seconds < 1) return Fail("--write-timeout must be at least 1 second");
  std::optional<std::string> keys_file_text;
  if (!a.api_key_file.empty()) {
    std::ifstream in(a.api_key_file);
    if (!in) return Fail("--api-key-file " + a.api_key_file + ": cannot be read");
    keys_file_text = std::string(std::istreambuf_iterator<char>(in), {});
  }
  absl::StatusOr<std::vector<std::string>> api_keys =
      ResolveApiKeys(a.api_keys, std::getenv(kApiKeyEnv), keys_file_text);
  if (!api_keys.ok()) return Fail(std::string(api_keys.status().message()));
  if (a.io_threads < 1 || a.pump_threads < 1) {
    return Fail("--io-threads and --pump-threads must be at least 1");
  }
  absl::StatusOr<KvPolicySpec> kv_policy = ParseKvPolicy(a.kv_policy, "--kv-");
  if (!kv_policy.ok()) return Fail(std::string(kv_policy.status().message()));
  if (a.threads > 0) cpu::SetNumThreads(a.threads);
  const auto load_start = std::chrono::steady_clock::now();
  auto lm = LoadedModel::Load(a.model);
  if (!lm.ok()) {
    return Fail("cannot load model " + a.model + ": " + std::string(lm.status().message()));
  }
  const double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  // The chat template: a folder's tokenizer_config.json, or the one inside a GGUF file.
  absl::StatusOr<ChatTemplate> tmpl = ChatTemplate{};
  if ((*lm)->is_gguf()) {
    const LoadedModel& m = **lm;
    if (!a.chat_template.empty() || m.gguf_chat_template.empty()) {
      tmpl = LoadChatTemplate(a.model, a.chat_template);  // a forced one, or the plain one
    } else {
      tmpl = ChatTemplateFromJinja(m.gguf_chat_template, a.model + " (tokenizer.chat_template)",
                                   {{"bos_token", m.gguf_bos_token},
                                    {"eos_token", m.gguf_eos_token}});
    }
    if (tmpl.ok()) {
      tmpl->bos_token = m.gguf_bos_token;
      tmpl->eos_token = m.gguf_eos_token;
    }
  } else {
    tmpl = LoadChatTemplate(a.model, a.chat_template);
  }
  if (!tmpl.ok()) return Fail(std::string(tmpl.status().message()));
  // Signals are taken by sigwait below; every thread started from here on blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  RaiseFileLimit();

  absl::StatusOr<BackendChoice> backend =
      CreateBackend(**lm, {.device = a.device,
                           .page_size = a.page_size,
                           .num_kv_pages = a.num_kv_pages,
                           .gpu_memory_utilization = a.gpu_memory_utilization,
                           .max_num_batched_tokens = a.max_num_batched_tokens,
                           .max_num_seqs = a.max_num_seqs,
                           .fp16 = a.dtype == "fp16"});
  if (!backend.ok()) return Fail(std::string(backend.status().message()));
  if (kv_policy->enabled() && !backend->runner->supports_kv_policies()) {
    return Fail("--kv-policy " + a.kv_policy.policy + ": the " + backend->device +
                " backend does not support KV policies");
  }
  {
    // The start-up summary, as vLLM logs one: model, size, dtype, context, KV pages, load time.
    const ModelConfig& c = (*lm)->config;
    std::cerr << absl::StrFormat(
        "longview: model %s (%s, %.1fM parameters, %d layers), device %s, dtype %s, context %d "
        "tokens, %d KV pages of %d tokens (%d tokens), loaded in %.2f s\n",
        a.model, ArchitectureName(c.architecture), ParameterCount(c) / 1e6, c.num_hidden_layers,
        backend->device, backend->device == "cuda" ? a.dtype : std::string("float32"),
        c.max_position_embeddings, backend->num_kv_pages, a.page_size,
        backend->num_kv_pages * a.page_size, load_seconds);
  }
  // The CUDA backend uploaded its own copy of the weights: the float32 host copy can go (an 8B
  // model's is 32 GB). The engine loop never touches it when given a runner.
  if (backend->device == "cuda") (*lm)->weights.reset();
  absl::StatusOr<std::shared_ptr<TieredKvStore>> kv_store = OpenKvTiers(
      {.host_memory_gib = a.kv_host_memory_gib,
       .disk_path = a.kv_disk_path,
       .disk_gib = a.kv_disk_gib,
       .device = backend->device,
       .dtype = backend->device == "cuda" ? a.dtype : std::string("float32"),
       .make_arena = backend->make_page_arena,
       .host_verify = a.kv_host_verify},
      **lm, backend->runner->kv_storage());
  if (!kv_store.ok()) return Fail(std::string(kv_store.status().message()));
  EngineLoopOptions eo;
  eo.runner = backend->runner;
  eo.kv_store = *kv_store;
  eo.kv_write_back = a.kv_write_back;
  eo.default_kv_policy = *kv_policy;
  eo.max_num_seqs = a.max_num_seqs;
  eo.max_num_batched_tokens = a.max_num_batched_tokens;
  eo.num_kv_pages = backend->num_kv_pages;
  eo.max_queue = a.max_queue;
  eo.page_size = a.page_size;
  EngineLoop loop(std::shared_ptr<const LoadedModel>(std::move(*lm)), eo);
  loop.Start();

  OpenAiServiceOptions so;
  so.served_model_name =
      !a.served_model_name.empty() ? a.served_model_name
      // As vLLM: the --model argument as given (clients resolve it as a tokenizer); the
      // embedded model's name when --model is absent.
      : a.model_given ? a.model
                      : FolderName(a.model);
  so.api_keys = *api_keys;
  so.chat_template = *tmpl;
  so.max_seqs_per_request = a.max_seqs_per_request;
  so.max_stall_seconds = a.health_stall_seconds;
  so.max_prompt_bytes = a.max_prompt_bytes;
  so.metrics_require_key = a.metrics_require_key;
  so.session_limits = {.max_sessions_per_key = a.max_sessions_per_key,
                       .max_tokens = a.session_max_tokens,
                       .max_embedding_bytes = a.session_max_embedding_bytes};
  so.session_max_append_bytes = a.session_max_append_bytes;
  FrontendPool frontend(a.frontend_threads);
  so.frontend = &frontend;
  std::string model_name = so.served_model_name;
  RequestPump pump(a.pump_threads);
  OpenAiService service(&loop, &pump, std::move(so));
  HttpServerOptions ho;
  ho.host = a.host;
  ho.port = a.port;
  ho.num_io_threads = a.io_threads;
  ho.max_body_bytes = a.max_body_bytes;
  ho.max_connections = a.max_connections;
  ho.max_inflight_body_bytes = a.max_inflight_body_bytes;
  ho.write_timeout_seconds = a.write_timeout_seconds;
  auto http = HttpServer::Start(ho, [&service](HttpRequest r, std::shared_ptr<HttpResponder> w) {
    service.Handle(std::move(r), std::move(w));
  });
  if (!http.ok()) {
    pump.Stop();
    loop.Stop();
    return Fail(std::string(http.status().message()));
  }
  std::unique_ptr<GrpcServer> grpc;
  if (a.grpc_port > 0) {
    auto g = StartGrpcServer(&loop, a.host, a.grpc_port,
                             GrpcServerOptions{.api_keys = *api_keys,
                                               .model_name = model_name,
                                               .max_stall_seconds = a.health_stall_seconds,
                                               .max_prompt_bytes = a.max_prompt_bytes,
                                               .frontend = &frontend});
    if (!g.ok()) {
      (*http)->Stop();
      pump.Stop();
      loop.Stop();
      return Fail(std::string(g.status().message()));
    }
    grpc = std::move(*g);
  }
  std::cerr << "longview: serving " << model_name << " (" << ChatTemplateKindName(tmpl->kind)
            << " chat template" << (tmpl->origin.empty() ? "" : " from " + tmpl->origin)
            << ")\n";
  std::cerr << "longview: auth "
            << (api_keys->empty()       ? std::string("off (no API key)")
                : api_keys->size() == 1 ? std::string("on")
                                        : absl::StrCat("on (", api_keys->size(), " keys)"))
            << (api_keys->empty() || !a.metrics_require_key ? "" : ", /metrics included")
            << "\n";
  std::cerr << "longview: HTTP on http://" << a.host << ":" << (*http)->port() << "\n";
  if (grpc) std::cerr << "longview: gRPC on " << a.host << ":" << grpc->port() << "\n";
  std::cerr.flush();

  // A periodic stats line, as vLLM logs one (--stats-interval seconds; 0: none).
  std::mutex stats_mu;
  std::condition_variable stats_cv;
  bool stats_stop = false;
  std::thread stats;
  if (a.stats_interval > 0) {
    stats = std::thread([&] {
      EngineMetrics last = loop.Snapshot();
      auto last_time = std::chrono::steady_clock::now();
      std::unique_lock<std::mutex> lock(stats_mu);
      while (!stats_cv.wait_for(lock, std::chrono::duration<double>(a.stats_interval),
                                [&] { return stats_stop; })) {
        const EngineMetrics m = loop.Snapshot();
        const auto now = std::chrono::steady_clock::now();
        const double dt = std::chrono::duration<double>(now - last_time).count();
        std::cerr << absl::StrFormat(
            "longview: stats: prompt %.1f tok/s, generation %.1f tok/s, running %d, waiting %d, "
            "KV usage %.1f%%, prefix cache hit rate %.1f%%, preemptions %d\n",
            (m.prompt_tokens_total - last.prompt_tokens_total) / dt,
            (m.generation_tokens_total - last.generation_tokens_total) / dt,
            m.num_requests_running, m.num_requests_waiting, 100.0 * m.kv_cache_usage_perc,
            m.prefix_cache_queries > 0 ? 100.0 * m.prefix_cache_hits / m.prefix_cache_queries
                                       : 0.0,
            m.num_preemptions_total);
        last = m;
        last_time = now;
      }
    });
  }
  auto stop_stats = [&] {
    {
      std::lock_guard<std::mutex> lock(stats_mu);
      stats_stop = true;
    }
    stats_cv.notify_all();
    if (stats.joinable()) stats.join();
  };

  int sig = 0;
  sigwait(&signals, &sig);
  // Drain: refuse new requests (health unhealthy), let open ones finish for up to
  // --shutdown-timeout seconds, then cancel what is left. A second signal ends the wait.
  std::cerr << "longview: signal " << sig << ", draining (up to " << a.shutdown_timeout
            << " s)\n";
  service.BeginDrain();
  if (grpc) grpc->BeginDrain();
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration<double>(a.shutdown_timeout);
  const timespec slice{.tv_sec = 0, .tv_nsec = 100'000'000};
  while (!loop.Idle() && std::chrono::steady_clock::now() < deadline) {
    if (sigtimedwait(&signals, nullptr, &slice) > 0) break;
  }
  std::cerr << "longview: " << (loop.Idle() ? "drained" : "drain cut short")
            << ", shutting down\n";
  if (grpc) grpc->Shutdown();
  // Ending the engine first lets open HTTP requests receive their Unavailable errors; the pump
  // then drains, and the io threads stop last (sessions need their io_context).
  stop_stats();
  // Requests being parsed or tokenized reach the engine (and fail there if it stopped first).
  frontend.Stop();
  loop.Stop();
  pump.Stop();
  (*http)->Stop();
  return 0;
}

}  // namespace longview
