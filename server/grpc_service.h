// The gRPC frontend: longview.v1.Generation (proto/longview.proto) over an EngineLoop, plus the
// standard grpc.health.v1.Health service and server reflection.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<GrpcServer> grpc,
//                    StartGrpcServer(&loop, "127.0.0.1", /*port=*/0, api_key, "llama"));
//   std::cout << "gRPC on port " << grpc->port() << "\n";
//   ...
//   grpc->Shutdown();  // before loop.Stop()
//
// Threading: the synchronous gRPC API. A Generate call occupies one thread of gRPC's own
// (bounded) pool while it is live; it waits for engine output in short slices and checks for
// client cancellation between them, so a cancelled or disconnected call releases its thread and
// cancels its RequestStream (freeing its KV blocks) within ~50 ms.
//
// Auth: with a non-empty api_key, Generation calls must carry `authorization: Bearer <api_key>`
// metadata (UNAUTHENTICATED otherwise). Health and reflection are open, for probes and tools.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "server/frontend_pool.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace longview {

class EngineLoop;
class GenerationService;

// A running gRPC server. Destroying it shuts it down.
// Thread-safety: all methods are safe from any thread.
struct GrpcServerOptions {
  std::vector<std::string> api_keys;  // any of them is accepted; empty: no auth
  std::string model_name;  // the id ListModels reports and requests may name
  // Health turns NOT_SERVING once the engine loop has had work without progress this long.
  double max_stall_seconds = 60;
  // Prompt text (Generate's prompt.text, Tokenize's text) at most this many bytes, checked
  // before tokenizing; 0: DefaultMaxPromptBytes of the model's context (server/limits.h). The
  // receive limit follows: this, plus a context's worth of token ids.
  int64_t max_prompt_bytes = 0;
  // Where prompts are tokenized (bounded concurrency); null: on the handler's thread.
  FrontendPool* frontend = nullptr;
};

class GrpcServer {
 public:
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Marks health NOT_SERVING, ends open Generate streams with UNAVAILABLE (cancelling their
  // requests), stops accepting calls and waits for the handlers to return. Idempotent.
  // REQUIRES: the EngineLoop is still alive (stop the loop after this).
  void Shutdown();
  // Graceful drain: health NOT_SERVING, new Generate calls UNAVAILABLE, open streams continue.
  void BeginDrain();

  // The bound port (the one picked when 0 was asked).
  int port() const { return port_; }

  // Generate calls ended because the client cancelled or disconnected (for tests and metrics).
  int64_t num_client_cancellations() const;

 private:
  friend absl::StatusOr<std::unique_ptr<GrpcServer>> StartGrpcServer(
      EngineLoop* loop, const std::string& host, int port, const GrpcServerOptions& options);
  GrpcServer() = default;

  std::unique_ptr<GenerationService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::once_flag shutdown_once_;
  // Health watchdog: NOT_SERVING while the engine loop is stalled (EngineLoop::StalledSeconds).
  std::thread watchdog_;
  std::mutex watchdog_mu_;
  std::condition_variable watchdog_cv_;
  bool watchdog_stop_ = false;
  bool draining_ = false;  // under watchdog_mu_
};

// Starts serving on host:port (host: an IPv4/IPv6 literal or name, e.g. "127.0.0.1", "0.0.0.0",
// "::1"; port 0 picks a free port). `model_name` is the id ListModels reports and requests may
// name. An empty `api_key` disables auth.
// Unavailable when the address cannot be bound; InvalidArgument for a bad port or null loop.
// REQUIRES: `loop` is started and outlives the returned server (or its Shutdown()).
absl::StatusOr<std::unique_ptr<GrpcServer>> StartGrpcServer(EngineLoop* loop,
                                                            const std::string& host, int port,
                                                            const std::string& api_key,
                                                            const std::string& model_name,
                                                            double max_stall_seconds = 60);
absl::StatusOr<std::unique_ptr<GrpcServer>> StartGrpcServer(EngineLoop* loop,
                                                            const std::string& host, int port,
                                                            const GrpcServerOptions& options);

}  // namespace longview
