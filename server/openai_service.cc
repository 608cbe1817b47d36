// OpenAiService: routes, auth, validation against the model, submission.
#include "server/openai_service.h"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/limits.h"
#include "server/api_error.h"
#include "server/metrics_text.h"
#include "server/openai_job.h"

namespace longview {
namespace {

using json = nlohmann::json;

void RespondError(HttpResponder& w, const absl::Status& status) {
  w.Respond(HttpStatusFor(status), "application/json", ErrorJson(status));
}

void RespondJson(HttpResponder& w, const json& body) {
  w.Respond(200, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace));
}

// Compares without an early exit, so timing does not reveal the key's prefix.
bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size() || b.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

OpenAiService::OpenAiService(EngineLoop* loop, RequestPump* pump, OpenAiServiceOptions options)
    : loop_(loop),
      pump_(pump),
      options_(std::move(options)),
      context_length_(loop->model().config.max_position_embeddings),
      max_prompt_bytes_(options_.max_prompt_bytes > 0 ? options_.max_prompt_bytes
                                                      : DefaultMaxPromptBytes(context_length_)),
      id_salt_(std::random_device{}()) {}

bool OpenAiService::Authorized(const HttpRequest& request) const {
  if (options_.api_key.empty()) return true;
  std::string auth = request.Header("authorization");
  const std::string prefix = "Bearer ";
  if (auth.size() < prefix.size() || auth.compare(0, prefix.size(), prefix) != 0) return false;
  return SameSecret(auth.substr(prefix.size()), options_.api_key);
}

std::string OpenAiService::NewId(const char* prefix) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%08llx", static_cast<unsigned long long>(id_salt_),
                static_cast<unsigned long long>(next_id_.fetch_add(1)));
  return absl::StrCat(prefix, buf);
}

void OpenAiService::Handle(HttpRequest request, std::shared_ptr<HttpResponder> responder) {
  const std::string& path = request.path;
  const std::string& method = request.method;
  if (path == "/health") {
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
    responder->Respond(200, kMetricsContentType,
                       RenderMetricsText(loop_->Snapshot(), options_.served_model_name));
    return;
  }
  bool is_api = path == "/v1" || path.rfind("/v1/", 0) == 0;
  if (is_api && !Authorized(request)) {
    RespondError(*responder,
                 WithCode(absl::UnauthenticatedError(
                              "Incorrect or missing API key: send 'Authorization: Bearer KEY'"),
                          "invalid_api_key"));
    return;
  }
  auto route = [&](const char* route_path, const char* route_method) {
    if (path != route_path) return false;
    if (method == route_method) return true;
    responder->Respond(
        405, "application/json",
        ErrorJson(absl::InvalidArgumentError(
            absl::StrCat("method ", method, " is not allowed on ", path, "; use ", route_method))));
    return false;
  };
  if (path == "/v1/models") {
    if (!route("/v1/models", "GET")) return;
    json model = {{"id", options_.served_model_name},
                  {"object", "model"},
                  {"created", NowSeconds()},
                  {"owned_by", "longview"},
                  {"max_model_len", context_length_}};
    RespondJson(*responder, json{{"object", "list"}, {"data", json::array({model})}});
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
    options_.frontend->Post(
        [this, kind, shared, responder] { HandleGeneration(kind, *shared, responder); });
  };
  if (path == "/v1/completions") {
    if (route("/v1/completions", "POST")) generate(ApiKind::kCompletion);
    return;
  }
  if (path == "/v1/chat/completions") {
    if (route("/v1/chat/completions", "POST")) generate(ApiKind::kChat);
    return;
  }
  RespondError(
      *responder,
      WithCode(absl::NotFoundError(absl::StrCat("no route for ", method, " ", path)), "not_found"));
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

}  // namespace longview
