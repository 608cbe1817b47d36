// OpenAiService: routes, auth, validation against the model, submission.
#include "server/openai_service.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/version.h"
#include "server/api_error.h"
#include "server/api_key.h"
#include "server/http_helpers.h"
#include "server/limits.h"
#include "server/metrics_text.h"
#include "server/openai_job.h"

namespace longview {

using json = nlohmann::json;

OpenAiService::OpenAiService(EngineLoop* loop, RequestPump* pump, OpenAiServiceOptions options)
    : loop_(loop),
      pump_(pump),
      options_(std::move(options)),
      context_length_(loop->model().config.max_position_embeddings),
      max_prompt_bytes_(options_.max_prompt_bytes > 0 ? options_.max_prompt_bytes
                                                      : DefaultMaxPromptBytes(context_length_)),
      id_salt_(std::random_device{}()) {
  sessions_ = std::make_unique<SessionService>(
      loop_, pump_,
      SessionServiceOptions{.served_model_name = options_.served_model_name,
                            .limits = options_.session_limits,
                            .max_append_bytes = options_.session_max_append_bytes,
                            .frontend = options_.frontend});
}

bool OpenAiService::Authorized(const HttpRequest& request, int* key) const {
  if (key != nullptr) *key = -1;
  if (options_.api_keys.empty()) return true;
  std::string auth = request.Header("authorization");
  std::optional<std::string_view> token = BearerToken(auth);
  const int match = token ? MatchApiKey(options_.api_keys, *token) : -1;
  if (match >= 0) {
    if (key != nullptr) *key = match;
    return true;
  }
  // Never the key or the credential sent: the path, the client and what was wrong.
  const char* why = auth.empty() ? "no Authorization header"
                    : !token     ? "not a Bearer credential"
                                 : "wrong key";
  std::cerr << absl::StrCat("longview: unauthorized ", request.method, " ",
                            LoggablePath(request.path), " from ", request.remote_address, " (", why,
                            ")\n");
  return false;
}

std::string OpenAiService::NewId(const char* prefix) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%08llx", static_cast<unsigned long long>(id_salt_),
                static_cast<unsigned long long>(next_id_.fetch_add(1)));
  return absl::StrCat(prefix, buf);
}

void OpenAiService::Handle(HttpRequest request, std::shared_ptr<HttpResponder> responder) {
  const std::string& path = request.path;
  // HEAD is answered as GET; the transport sends the headers only.
  if (path == "/health") {
    if (!MethodAllowed(request, "GET, HEAD", *responder)) return;
    if (draining_.load()) {
      responder->Respond(503, "application/json", "{\"status\":\"draining\"}");
      return;
    }
    const double stalled = loop_->StalledSeconds();
    if (stalled > options_.max_stall_seconds) {
      responder->Respond(503, "application/json",
                         absl::StrFormat("{\"status\":\"stalled\",\"stalled_seconds\":%.1f}",
                                         stalled));
      return;
    }
    responder->Respond(200, "application/json", "{\"status\":\"ok\"}");
    return;
  }
  if (path == "/metrics") {
    if (options_.metrics_require_key && !Authorized(request)) {
      RespondError(*responder,
                   WithCode(absl::UnauthenticatedError(
                                "Incorrect or missing API key: send 'Authorization: Bearer KEY'"),
                            "invalid_api_key"));
      return;
    }
    if (MethodAllowed(request, "GET, HEAD", *responder)) {
      responder->Respond(200, kMetricsContentType,
                         RenderMetricsText(loop_->Snapshot(), options_.served_model_name));
    }
    return;
  }
  if (path == "/version") {
    if (MethodAllowed(request, "GET, HEAD", *responder)) {
      RespondJson(*responder, json{{"version", kVersion}});
    }
    return;
  }
  // The /v1/ routes and vLLM's /tokenize and /detokenize (which cost tokenizer time).
  bool is_api = path == "/v1" || path.rfind("/v1/", 0) == 0 || path == "/tokenize" ||
                path == "/detokenize";
  int key = -1;
  if (is_api && !Authorized(request, &key)) {
    RespondError(*responder,
                 WithCode(absl::UnauthenticatedError(
                              "Incorrect or missing API key: send 'Authorization: Bearer KEY'"),
                          "invalid_api_key"));
    return;
  }
  const json model = {{"id", options_.served_model_name},
                      {"object", "model"},
                      {"created", NowSeconds()},
                      {"owned_by", "longview"},
                      {"max_model_len", context_length_}};
  if (path == "/v1/models") {
    if (!MethodAllowed(request, "GET, HEAD", *responder)) return;
    RespondJson(*responder, json{{"object", "list"}, {"data", json::array({model})}});
    return;
  }
  if (path.rfind("/v1/models/", 0) == 0) {
    if (!MethodAllowed(request, "GET, HEAD", *responder)) return;
    const std::string id = path.substr(std::strlen("/v1/models/"));
    if (id != options_.served_model_name) {
      RespondError(*responder,
                   WithCode(absl::NotFoundError(absl::StrCat("The model `", id,
                                                             "` does not exist")),
                            "model_not_found"));
      return;
    }
    RespondJson(*responder, model);
    return;
  }
  if (path == "/tokenize" || path == "/detokenize") {
    if (!MethodAllowed(request, "POST", *responder)) return;
    const bool tokenize = path == "/tokenize";
    auto work = [this, tokenize, body = request.body, responder] {
      if (tokenize) {
        HandleTokenize(body, *responder);
      } else {
        HandleDetokenize(body, *responder);
      }
    };
    if (options_.frontend != nullptr) {
      options_.frontend->Post(Guarded(std::move(work), responder));
    } else {
      work();
    }
    return;
  }
  // Generation: parsed, tokenized and submitted on the frontend pool, not on the io thread.
  auto generate = [&](ApiKind kind) {
    if (draining_.load()) {
      RespondError(*responder,
                   WithCode(absl::UnavailableError("the server is shutting down: no new requests"),
                            "server_shutting_down"));
      return;
    }
    if (options_.frontend == nullptr) {
      HandleGeneration(kind, request, responder);
      return;
    }
    auto shared = std::make_shared<HttpRequest>(std::move(request));
    options_.frontend->Post(Guarded(
        [this, kind, shared, responder] { HandleGeneration(kind, *shared, responder); },
        responder));
  };
  if (SessionService::Handles(path)) {
    if (draining_.load() && request.method == "POST") {
      RespondError(*responder,
                   WithCode(absl::UnavailableError("the server is shutting down: no new requests"),
                            "server_shutting_down"));
      return;
    }
    sessions_->Handle(std::move(request), key, responder);
    return;
  }
  if (path == "/v1/completions") {
    if (MethodAllowed(request, "POST", *responder)) generate(ApiKind::kCompletion);
    return;
  }
  if (path == "/v1/chat/completions") {
    if (MethodAllowed(request, "POST", *responder)) generate(ApiKind::kChat);
    return;
  }
  RespondError(
      *responder,
      WithCode(absl::NotFoundError(absl::StrCat("no route for ", request.method, " ", path)),
               "not_found"));
}

absl::StatusOr<std::vector<std::vector<int32_t>>> OpenAiService::Prompts(
    const ApiRequest& r) const {
  const Tokenizer& tok = *loop_->model().tokenizer;
  std::vector<std::vector<int32_t>> prompts;
  if (r.kind == ApiKind::kChat) {
    absl::StatusOr<RenderedPrompt> rendered = RenderChat(
        options_.chat_template, r.messages,
        ChatRenderOptions{.add_generation_prompt = r.add_generation_prompt,
                          .chat_template_kwargs = r.chat_template_kwargs});
    if (!rendered.ok()) return InvalidParam("messages", std::string(rendered.status().message()));
    prompts.push_back(EncodeChat(options_.chat_template, tok, *rendered));
  } else {
    for (size_t i = 0; i < r.prompts.size(); ++i) {
      const PromptInput& p = r.prompts[i];
      if (!p.is_tokens) {
        prompts.push_back(tok.Encode(p.text, true));
        continue;
      }
      for (int32_t id : p.tokens) {
        if (id >= tok.vocab_size()) {
          return InvalidParam(
              "prompt", absl::StrCat("prompt token id ", id, " is outside the vocabulary [0, ",
                                     tok.vocab_size(), ")"));
        }
      }
      prompts.push_back(p.tokens);
    }
  }
  const char* what = r.kind == ApiKind::kChat ? "messages" : "prompt";
  for (const auto& p : prompts) {
    if (p.empty()) return InvalidParam(what, absl::StrCat("the ", what, " encodes to no tokens"));
    int64_t len = static_cast<int64_t>(p.size());
    int64_t max_tokens = r.max_tokens.value_or(r.kind == ApiKind::kChat ? 1 : 16);
    // The mode's limit: the context, or none where it re-assigns positions (StreamingLLM).
    if (len > r.attention->MaxSequenceLength(context_length_) - max_tokens) {
      bool prompt_alone = len >= context_length_;
      return WithCode(
          InvalidParam(prompt_alone || !r.max_tokens ? what : "max_tokens",
                       absl::StrCat("This model's maximum context length is ", context_length_,
                                    " tokens. However, you requested ", len + max_tokens,
                                    " tokens (", len, " in the ", what, ", ", max_tokens,
                                    " in the completion). Please reduce the length of the ", what,
                                    " or max_tokens.")),
          "context_length_exceeded");
    }
  }
  return prompts;
}

void OpenAiService::HandleGeneration(ApiKind kind, const HttpRequest& request,
                                     const std::shared_ptr<HttpResponder>& responder) {
  absl::StatusOr<ApiRequest> parsed = ParseApiRequest(kind, request.body);
  if (!parsed.ok()) {
    RespondError(*responder, parsed.status());
    return;
  }
  ApiRequest& r = *parsed;
  if (!r.model.empty() && r.model != options_.served_model_name) {
    RespondError(
        *responder,
        WithCode(WithParam(absl::NotFoundError(absl::StrCat("The model `", r.model,
                                                            "` does not exist; this server "
                                                            "serves `",
                                                            options_.served_model_name, "`.")),
                           "model"),
                 "model_not_found"));
    return;
  }
  // prompts × n sequences at most per request, checked before tokenizing: one call must not
  // flood the queue.
  const int64_t num_prompts =
      kind == ApiKind::kChat ? 1 : static_cast<int64_t>(r.prompts.size());
  const int64_t num_seqs = num_prompts * r.n;
  if (num_seqs > options_.max_seqs_per_request) {
    RespondError(*responder,
                 InvalidParam(num_prompts > 1 ? "prompt" : "n",
                              absl::StrCat("this request makes ", num_prompts, " prompts x n = ",
                                           r.n, " = ", num_seqs, " sequences; at most ",
                                           options_.max_seqs_per_request, " per request")));
    return;
  }
  // The prompt's bytes before tokenizing them.
  int64_t prompt_bytes = 0;
  for (const PromptInput& p : r.prompts) prompt_bytes += p.is_tokens ? 0 : p.text.size();
  for (const ChatMessage& m : r.messages) {
    prompt_bytes += m.content.size() + m.name.size() + m.tool_calls.size() + m.tool_call_id.size();
  }
  prompt_bytes += r.chat_template_kwargs.size();
  if (prompt_bytes > max_prompt_bytes_) {
    const char* what = kind == ApiKind::kChat ? "messages" : "prompt";
    RespondError(*responder,
                 InvalidParam(what, absl::StrCat("the ", what, " is ", prompt_bytes,
                                                 " bytes of text; this server takes at most ",
                                                 max_prompt_bytes_, " (--max-prompt-bytes)")));
    return;
  }
  absl::StatusOr<std::vector<std::vector<int32_t>>> prompts = Prompts(r);
  if (!prompts.ok()) {
    RespondError(*responder, prompts.status());
    return;
  }
  JobSpec spec;
  spec.kind = kind;
  spec.id = NewId(kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-");
  spec.model = options_.served_model_name;
  spec.created = NowSeconds();
  spec.n = r.n;
  spec.stream = r.stream;
  spec.include_usage = r.include_usage;
  spec.logprobs = r.logprobs;
  spec.tokens_as_ids = r.tokens_as_ids;
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < prompts->size(); ++i) {
    GenerationRequest g;
    g.request_id = prompts->size() == 1 ? spec.id : absl::StrCat(spec.id, "-", i);
    g.prompt_tokens = std::move((*prompts)[i]);
    g.sampling = r.sampling;
    if (g.sampling.seed && i > 0) *g.sampling.seed += i;  // distinct prompts, distinct draws
    // Chat without max_tokens: what the context has left, or for a mode without a length limit
    // (a stream) as much as a context holds.
    g.max_tokens = r.max_tokens.value_or(
        kind != ApiKind::kChat
            ? 16
            : std::min(context_length_, r.attention->MaxSequenceLength(context_length_) -
                                            static_cast<int64_t>(g.prompt_tokens.size())));
    g.stop = r.stop;
    g.ignore_eos = r.ignore_eos;
    g.n = r.n;
    g.logprobs = r.logprobs;
    g.attention = r.attention;
    g.kv_policy = r.kv_policy;
    requests.push_back(std::move(g));
  }
  // Admitted or refused whole: a refused request leaves nothing queued.
  absl::StatusOr<std::vector<std::shared_ptr<RequestStream>>> streams =
      loop_->SubmitAll(std::move(requests));
  if (!streams.ok()) {
    absl::Status status = streams.status();
    if (status.code() == absl::StatusCode::kResourceExhausted) {
      status = WithCode(status, "queue_full");
    }
    RespondError(*responder, status);
    return;
  }
  auto job = std::make_shared<GenerationJob>(std::move(spec), *std::move(streams), responder,
                                             loop_->model().tokenizer.get());
  job->Begin();
  pump_->Add(std::move(job));
}

absl::Status OpenAiService::CheckModelName(const std::string& model) const {
  return longview::CheckModelName(model, options_.served_model_name);
}

void OpenAiService::HandleTokenize(const std::string& body, HttpResponder& responder) {
  absl::StatusOr<TokenizeRequest> t = ParseTokenizeRequest(body);
  if (!t.ok()) return RespondError(responder, t.status());
  if (absl::Status s = CheckModelName(t->model); !s.ok()) return RespondError(responder, s);
  int64_t bytes = static_cast<int64_t>(t->prompt.size());
  for (const ChatMessage& m : t->messages) bytes += static_cast<int64_t>(m.content.size());
  if (bytes > max_prompt_bytes_) {
    const char* what = t->is_chat ? "messages" : "prompt";
    return RespondError(responder,
                        InvalidParam(what, absl::StrCat("the ", what, " is ", bytes,
                                                        " bytes of text; this server takes at "
                                                        "most ", max_prompt_bytes_,
                                                        " (--max-prompt-bytes)")));
  }
  const Tokenizer& tok = *loop_->model().tokenizer;
  std::vector<int32_t> ids;
  if (t->is_chat) {
    // Messages: exactly the ids a chat completion of them would run.
    absl::StatusOr<RenderedPrompt> rendered = RenderChat(
        options_.chat_template, t->messages,
        ChatRenderOptions{.add_generation_prompt = t->add_generation_prompt});
    if (!rendered.ok()) {
      return RespondError(responder,
                          InvalidParam("messages", std::string(rendered.status().message())));
    }
    ids = EncodeChat(options_.chat_template, tok, *rendered);
  } else {
    ids = tok.Encode(t->prompt, t->add_special_tokens);
  }
  RespondJson(responder, json{{"count", ids.size()},
                              {"max_model_len", context_length_},
                              {"tokens", ids},
                              {"token_strs", nullptr}});
}

void OpenAiService::HandleDetokenize(const std::string& body, HttpResponder& responder) {
  absl::StatusOr<DetokenizeRequest> d = ParseDetokenizeRequest(body);
  if (!d.ok()) return RespondError(responder, d.status());
  if (absl::Status s = CheckModelName(d->model); !s.ok()) return RespondError(responder, s);
  const Tokenizer& tok = *loop_->model().tokenizer;
  for (size_t i = 0; i < d->tokens.size(); ++i) {
    if (d->tokens[i] >= tok.vocab_size()) {
      return RespondError(responder,
                          InvalidParam("tokens", absl::StrCat("tokens[", i, "] = ", d->tokens[i],
                                                              " is outside [0, ", tok.vocab_size(),
                                                              ")")));
    }
  }
  RespondJson(responder, json{{"prompt", tok.Decode(d->tokens)}});
}

}  // namespace longview
