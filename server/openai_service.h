// The OpenAI-compatible HTTP API over an EngineLoop: routing, Bearer-key auth, request
// validation against the model (name, token ids, context length), submission, and hand-off of
// the streams to the RequestPump.
//
// Routes: POST /v1/completions, POST /v1/chat/completions, GET|HEAD /v1/models, the session API
// /v1/sessions... (server/session_service.h; all behind the API keys when there are any), GET|HEAD /health and GET|HEAD /metrics (always open). A known path
// asked with another method gets 405 with an Allow header. The key is sent as
// `Authorization: Bearer KEY` (scheme in any case) and compared in constant time; a refusal is
// logged on stderr with the path and the client's address, never the key.
//
//   OpenAiService service(&loop, &pump, options);
//   ASSIGN_OR_RETURN(auto http, HttpServer::Start(http_options,
//       [&](HttpRequest r, std::shared_ptr<HttpResponder> w) { service.Handle(std::move(r), w);
//       }));
// Thread-safety: Handle is safe from any thread (it runs on io threads and never blocks on
// generation).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "scheduler/engine_loop.h"
#include "engine/text/chat_template.h"
#include "server/frontend_pool.h"
#include "server/http_server.h"
#include "server/openai_request.h"
#include "server/request_pump.h"
#include "server/session_service.h"

namespace longview {

struct OpenAiServiceOptions {
  std::string served_model_name;
  // Any of them is accepted; empty: no auth (`serve` refuses an empty key given explicitly).
  // Sessions belong to the key that created them.
  std::vector<std::string> api_keys;
  ChatTemplate chat_template;
  // prompts × n of one request at most (more is a 400 naming `prompt` or `n`).
  int64_t max_seqs_per_request = 256;
  // /health answers 503 once the engine loop has had work without progress for this long.
  double max_stall_seconds = 60;
  // A prompt's text (or a chat's message contents) at most this many bytes, checked before
  // tokenizing; 0: DefaultMaxPromptBytes of the model's context (server/limits.h).
  int64_t max_prompt_bytes = 0;
  // /metrics asks for the API key too (when one is set).
  bool metrics_require_key = false;
  // Where generation requests are parsed and tokenized (off the io threads); null: inline.
  FrontendPool* frontend = nullptr;
  // The session API (/v1/sessions, server/session_service.h).
  SessionLimits session_limits;
  int64_t session_max_append_bytes = int64_t{1} << 20;
};

class OpenAiService {
 public:
  // `loop` and `pump` must outlive the service.
  OpenAiService(EngineLoop* loop, RequestPump* pump, OpenAiServiceOptions options);

  void Handle(HttpRequest request, std::shared_ptr<HttpResponder> responder);
  // Graceful drain: /health answers 503 "draining", new generation requests 503; open ones go on.
  void BeginDrain() { draining_.store(true); }

 private:
  void HandleGeneration(ApiKind kind, const HttpRequest& request,
                        const std::shared_ptr<HttpResponder>& responder);
  // Tokenized prompts of a validated request, checked against the model.
  absl::StatusOr<std::vector<std::vector<int32_t>>> Prompts(const ApiRequest& r) const;
  // vLLM's /tokenize and /detokenize.
  void HandleTokenize(const std::string& body, HttpResponder& responder);
  void HandleDetokenize(const std::string& body, HttpResponder& responder);
  // NotFound (model_not_found) unless `model` is empty or the served name.
  absl::Status CheckModelName(const std::string& model) const;
  // True when auth is off or the request carries one of the keys (its index in *key, -1 with
  // auth off).
  bool Authorized(const HttpRequest& request, int* key = nullptr) const;
  std::string NewId(const char* prefix);

  EngineLoop* loop_;
  RequestPump* pump_;
  OpenAiServiceOptions options_;
  int64_t context_length_;
  int64_t max_prompt_bytes_;
  std::unique_ptr<SessionService> sessions_;
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_id_{0};
  uint64_t id_salt_;
};

}  // namespace longview
