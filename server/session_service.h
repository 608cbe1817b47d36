// The HTTP session API (DESIGN §5) over a SessionStore and the engine loop:
//
//   POST   /v1/sessions                 {"longview": {"attention": {...}}}  -> {"id", ...}
//   GET    /v1/sessions                 the key's sessions
//   GET    /v1/sessions/{id}            {"id", "num_tokens", "attention", ...}
//   DELETE /v1/sessions/{id}
//   POST   /v1/sessions/{id}/append     {"text"} | {"token_ids"}; answers once the appended
//                                       tokens' KV is computed (and cached)
//   POST   /v1/sessions/{id}/ask        {"question", "max_tokens", "temperature", "stream",
//                                        "append": false, ...}: a completion (JSON or SSE) of
//                                       the session's tokens followed by the question's
//
// A session's KV lives in the prefix cache and the tiers below it: an append runs a prompt-only
// request over the whole history (the cached part is not recomputed), and an ask's prompt is the
// history plus the question, so its prefix hit covers what the appends computed. The mode is the
// session's (sliding window with 4 sinks by default, so a session may outgrow the context); ask
// takes the sampling fields of /v1/completions but not `prompt`, `n` or `longview`. With
// "append": true the question and the answer join the session once the answer is complete.
// Appending {"embeddings"} (a vision encoder's output) is refused for now, naming the field.
// Thread-safety: Handle is safe from any thread and never blocks on generation.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "scheduler/engine_loop.h"
#include "server/frontend_pool.h"
#include "server/http_server.h"
#include "server/request_pump.h"
#include "server/session_store.h"

namespace longview {

struct SessionServiceOptions {
  std::string served_model_name;
  SessionLimits limits;
  // Bytes of one append's body at most (413 beyond).
  int64_t max_append_bytes = int64_t{1} << 20;
  // Where requests are parsed, tokenized and submitted (off the io threads); null: inline.
  FrontendPool* frontend = nullptr;
};

class SessionService {
 public:
  // `loop` and `pump` must outlive the service.
  SessionService(EngineLoop* loop, RequestPump* pump, SessionServiceOptions options);

  // True when `path` is a session route (/v1/sessions...).
  static bool Handles(const std::string& path);
  // Serves a session route for the API key `owner` (its index; -1 without keys), already
  // authorized.
  void Handle(HttpRequest request, int owner, std::shared_ptr<HttpResponder> responder);

  const SessionStore& store() const { return store_; }

 private:
  void Create(const HttpRequest& request, int owner, HttpResponder& responder);
  void Append(const HttpRequest& request, int owner, const std::string& id,
              const std::shared_ptr<HttpResponder>& responder);
  void Ask(const HttpRequest& request, int owner, const std::string& id,
           const std::shared_ptr<HttpResponder>& responder);
  // Runs `work` on the frontend pool (exceptions answer 500), or inline without one.
  void Post(std::function<void()> work, const std::shared_ptr<HttpResponder>& responder);
  std::string NewRequestId(const char* prefix);

  EngineLoop* loop_;
  RequestPump* pump_;
  SessionServiceOptions options_;
  SessionStore store_;
  Attention default_attention_;
  int64_t context_length_;
  std::atomic<uint64_t> next_request_{0};
};

}  // namespace longview
