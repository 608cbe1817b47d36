#include "server/session_service.h"

#include <cstdio>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "server/api_error.h"
#include "server/http_helpers.h"
#include "server/openai_job.h"
#include "server/openai_request.h"
#include "server/session_embeddings.h"

namespace longview {
namespace {

using json = nlohmann::ordered_json;

constexpr char kPrefix[] = "/v1/sessions";

json AttentionJson(const Attention& a) {
  json out = {{"mode", std::string(a->name())}};
  for (const auto& [name, value] : a->Params()) out[name] = value;
  return out;
}

json SessionJson(const SessionSnapshot& s, const std::string& model) {
  return json{{"id", s.id},
              {"object", "session"},
              {"created", s.created},
              {"model", model},
              {"num_tokens", s.tokens.size()},
              {"num_appends", s.num_appends},
              {"num_asks", s.num_asks},
              {"num_frames", s.frames.size()},
              {"embedding_bytes", s.embedding_bytes},
              {"attention", AttentionJson(s.attention)}};
}

void Respond(HttpResponder& w, const json& body) {
  w.Respond(200, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace));
}

// The body as a JSON object (an empty body is {} where `empty_ok`).
absl::StatusOr<json> BodyObject(const std::string& body, bool empty_ok) {
  if (body.empty() && empty_ok) return json::object();
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidParam("", "the request body is not valid JSON");
  if (!j.is_object()) return InvalidParam("", "the request body must be a JSON object");
  return j;
}

// The engine's refusal of a session's request, naming the field the client sent.
absl::Status Refused(absl::Status st, const std::string& field, size_t num_tokens) {
  if (st.code() == absl::StatusCode::kResourceExhausted) return WithCode(st, "queue_full");
  if (st.code() != absl::StatusCode::kInvalidArgument) return st;
  return InvalidParam(field, absl::StrCat(field, ": the session's request of ", num_tokens,
                                          " tokens was refused: ", st.message()));
}

// Waits for an append's prompt-only request and answers with the session's new size.
class AppendJob : public PumpJob {
 public:
  AppendJob(std::shared_ptr<RequestStream> stream, std::shared_ptr<HttpResponder> responder,
            json body)
      : stream_(std::move(stream)), responder_(std::move(responder)), body_(std::move(body)) {}

  PollResult Poll(std::chrono::milliseconds wait) override {
    RequestOutput out;
    bool timed_out = false;
    if (!stream_->NextFor(&out, wait, &timed_out)) {
      if (timed_out) return PollResult::kIdle;
      out.finished = true;  // closed without a final output
    }
    cached_ = std::max(cached_, out.cached_prompt_tokens);
    if (!out.status.ok()) {
      RespondError(*responder_, out.status);
      return PollResult::kDone;
    }
    if (!out.finished) return PollResult::kProgress;
    body_["cached_tokens"] = cached_;
    Respond(*responder_, body_);
    return PollResult::kDone;
  }
  void Abandon() override {
    RespondError(*responder_, absl::UnavailableError("the server is shutting down"));
  }

 private:
  std::shared_ptr<RequestStream> stream_;
  std::shared_ptr<HttpResponder> responder_;
  json body_;
  int64_t cached_ = 0;
};

}  // namespace

SessionService::SessionService(EngineLoop* loop, RequestPump* pump, SessionServiceOptions options)
    : loop_(loop),
      pump_(pump),
      options_(std::move(options)),
      store_(options_.limits),
      context_length_(loop->model().config.max_position_embeddings) {
  // ReKV's encoding: a sliding window with attention sinks, half the context wide, so that a
  // session outgrows the context and a question still has room.
  absl::StatusOr<Attention> a = Attention::Of(
      SlidingWindowAttention{.window = std::max<int64_t>(context_length_ / 2, 8), .sinks = 4});
  default_attention_ = a.ok() ? *a : Attention();
}

bool SessionService::Handles(const std::string& path) {
  return path == kPrefix || path.rfind(std::string(kPrefix) + "/", 0) == 0;
}

std::string SessionService::NewRequestId(const char* prefix) {
  static const uint64_t salt = std::random_device{}();
  return absl::StrFormat("%s%08x%08x", prefix, salt & 0xffffffffu, next_request_.fetch_add(1));
}

void SessionService::Post(std::function<void()> work,
                          const std::shared_ptr<HttpResponder>& responder) {
  if (options_.frontend == nullptr) {
    Guarded(std::move(work), responder)();
  } else {
    options_.frontend->Post(Guarded(std::move(work), responder));
  }
}

void SessionService::Handle(HttpRequest request, int owner,
                            std::shared_ptr<HttpResponder> responder) {
  const std::string& path = request.path;
  if (path == kPrefix) {
    if (!MethodAllowed(request, "GET, HEAD, POST", *responder)) return;
    if (request.method == "POST") {
      Create(request, owner, *responder);
      return;
    }
    json data = json::array();
    for (const SessionSnapshot& s : store_.List(owner)) {
      data.push_back(SessionJson(s, options_.served_model_name));
    }
    Respond(*responder, json{{"object", "list"}, {"data", data}});
    return;
  }
  // /v1/sessions/{id}[/append|/ask]
  std::string rest = path.substr(sizeof(kPrefix));
  std::string action;
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    action = rest.substr(slash + 1);
    rest.resize(slash);
  }
  const std::string id = rest;
  if (id.empty() || (!action.empty() && action != "append" && action != "ask")) {
    RespondError(*responder, WithCode(absl::NotFoundError(absl::StrCat(
                                          "no route for ", request.method, " ", LoggablePath(path),
                                          " (sessions: /v1/sessions/{id}, /append, /ask)")),
                                      "not_found"));
    return;
  }
  if (action.empty()) {
    if (!MethodAllowed(request, "GET, HEAD, DELETE", *responder)) return;
    if (request.method == "DELETE") {
      absl::Status st = store_.Delete(owner, id);
      if (!st.ok()) {
        RespondError(*responder, st);
        return;
      }
      Respond(*responder, json{{"id", id}, {"object", "session.deleted"}, {"deleted", true}});
      return;
    }
    absl::StatusOr<SessionSnapshot> s = store_.Get(owner, id);
    if (!s.ok()) {
      RespondError(*responder, s.status());
      return;
    }
    Respond(*responder, SessionJson(*s, options_.served_model_name));
    return;
  }
  if (!MethodAllowed(request, "POST", *responder)) return;
  auto shared = std::make_shared<HttpRequest>(std::move(request));
  if (action == "append") {
    Post([this, shared, owner, id, responder] { Append(*shared, owner, id, responder); },
         responder);
  } else {
    Post([this, shared, owner, id, responder] { Ask(*shared, owner, id, responder); }, responder);
  }
}

void SessionService::Create(const HttpRequest& request, int owner, HttpResponder& responder) {
  absl::StatusOr<json> body = BodyObject(request.body, /*empty_ok=*/true);
  if (!body.ok()) {
    RespondError(responder, body.status());
    return;
  }
  Attention attention = default_attention_;
  for (const auto& [key, value] : body->items()) {
    if (key == "longview") {
      if (!value.is_object()) {
        RespondError(responder, InvalidParam("longview", "longview must be an object"));
        return;
      }
      for (const auto& [k, v] : value.items()) {
        if (k != "attention") {
          RespondError(responder,
                       InvalidParam("longview." + k,
                                    absl::StrCat("longview.", k,
                                                 " is not a session field (known: attention)")));
          return;
        }
        absl::StatusOr<Attention> a = ParseAttentionObject(v);
        if (!a.ok()) {
          RespondError(responder, a.status());
          return;
        }
        attention = *a;
      }
    } else if (key == "retrieval") {
      RespondError(responder,
                   InvalidParam("retrieval",
                                "retrieval: ReKV retrieval is not available on this server yet; "
                                "leave it out (the session attends to its sinks and window)"));
      return;
    } else if (key != "model") {
      RespondError(responder, InvalidParam(key, absl::StrCat(key, " is not a session field "
                                                                  "(known: model, longview)")));
      return;
    }
  }
  if (body->contains("model")) {
    const json& m = (*body)["model"];
    absl::Status st =
        CheckModelName(m.is_string() ? m.get<std::string>() : m.dump(), options_.served_model_name);
    if (!st.ok()) {
      RespondError(responder, st);
      return;
    }
  }
  absl::StatusOr<std::string> id = store_.Create(owner, attention, NowSeconds());
  if (!id.ok()) {
    RespondError(responder, WithCode(id.status(), "session_limit"));
    return;
  }
  // A session starts with what the tokenizer puts before a text (BOS), so that appended text is
  // encoded as a continuation.
  const std::vector<int32_t> start = loop_->model().tokenizer->Encode("", true);
  absl::StatusOr<SessionSnapshot> s = store_.Append(
      owner, *id, start, "text", [](const SessionSnapshot&) { return absl::OkStatus(); });
  if (!s.ok()) {
    RespondError(responder, s.status());
    return;
  }
  Respond(responder, SessionJson(*s, options_.served_model_name));
}

void SessionService::Append(const HttpRequest& request, int owner, const std::string& id,
                            const std::shared_ptr<HttpResponder>& responder) {
  if (static_cast<int64_t>(request.body.size()) > options_.max_append_bytes) {
    RespondError(*responder,
                 WithCode(absl::InvalidArgumentError(absl::StrFormat(
                              "the append's body is %d bytes; this server takes at most %d "
                              "(--session-max-append-bytes)",
                              request.body.size(), options_.max_append_bytes)),
                          "request_too_large"));
    return;
  }
  absl::StatusOr<json> body = BodyObject(request.body, /*empty_ok=*/false);
  if (!body.ok()) {
    RespondError(*responder, body.status());
    return;
  }
  absl::StatusOr<SessionSnapshot> session = store_.Get(owner, id);
  if (!session.ok()) {
    RespondError(*responder, session.status());
    return;
  }
  const Tokenizer& tok = *loop_->model().tokenizer;
  std::string field;
  std::vector<int32_t> tokens;
  std::optional<SessionEmbeddings> embeddings;
  for (const auto& [key, value] : body->items()) {
    if (key != "text" && key != "token_ids" && key != "embeddings") {
      RespondError(*responder,
                   InvalidParam(key, absl::StrCat(key, " is not an append field (known: text, "
                                                       "token_ids, embeddings)")));
      return;
    }
    if (!field.empty()) {
      RespondError(*responder,
                   InvalidParam(key, absl::StrCat("an append takes one of text, token_ids or "
                                                  "embeddings; got ",
                                                  field, " and ", key)));
      return;
    }
    field = key;
    if (key == "embeddings") {
      absl::StatusOr<SessionEmbeddings> e =
          ParseSessionEmbeddings(value, loop_->model().config.hidden_size);
      if (!e.ok()) {
        RespondError(*responder, e.status());
        return;
      }
      embeddings = *std::move(e);
      continue;
    }
    if (key == "text") {
      if (!value.is_string() || value.get<std::string>().empty()) {
        RespondError(*responder, InvalidParam("text", "text must be a non-empty string"));
        return;
      }
      tokens = tok.Encode(value.get<std::string>(), /*add_special=*/false);
      if (tokens.empty()) {
        RespondError(*responder, InvalidParam("text", "text encodes to no tokens"));
        return;
      }
      continue;
    }
    if (!value.is_array() || value.empty()) {
      RespondError(*responder,
                   InvalidParam("token_ids", "token_ids must be a non-empty array of integers"));
      return;
    }
    for (size_t i = 0; i < value.size(); ++i) {
      const json& t = value[i];
      if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
          t.get<int64_t>() >= tok.vocab_size()) {
        RespondError(*responder,
                     InvalidParam("token_ids",
                                  absl::StrFormat("token_ids[%d] = %s is not a token id of this "
                                                  "model (integers in [0, %d))",
                                                  i, t.dump(), tok.vocab_size())));
        return;
      }
      tokens.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
  }
  if (field.empty()) {
    RespondError(*responder,
                 InvalidParam("text", "an append needs one of text, token_ids or embeddings"));
    return;
  }
  std::shared_ptr<RequestStream> stream;
  auto commit = [&](const SessionSnapshot& all) -> absl::Status {
    GenerationRequest g;
    g.request_id = NewRequestId("sessappend-");
    g.prompt_tokens = all.tokens;
    g.embeddings = all.embeddings;
    g.max_tokens = 0;  // compute and cache the KV; sample nothing
    g.attention = session->attention;
    absl::StatusOr<std::shared_ptr<RequestStream>> s = loop_->Submit(std::move(g));
    if (!s.ok()) return Refused(s.status(), field, all.tokens.size());
    stream = *std::move(s);
    return absl::OkStatus();
  };
  const int64_t added = embeddings ? embeddings->rows : static_cast<int64_t>(tokens.size());
  absl::StatusOr<SessionSnapshot> after =
      embeddings ? store_.AppendEmbeddings(owner, id, loop_->model().config.hidden_size,
                                           std::move(embeddings->values),
                                           std::move(embeddings->frames), commit)
                 : store_.Append(owner, id, tokens, field, commit);
  if (!after.ok()) {
    RespondError(*responder, after.status());
    return;
  }
  json out = {{"id", id},
              {"object", "session.append"},
              {"appended_tokens", added},
              {"num_tokens", after->tokens.size()}};
  if (field == "embeddings") {
    // The frames this append added: those from its first position on.
    json frames = json::array();
    const int64_t first = static_cast<int64_t>(after->tokens.size()) - added;
    for (const SessionFrame& f : after->frames) {
      if (f.start < first) continue;
      frames.push_back(json{{"block_id", f.block_id},
                            {"timestamp", f.timestamp},
                            {"start", f.start},
                            {"rows", f.rows}});
    }
    out["frames"] = std::move(frames);
  }

  pump_->Add(std::make_shared<AppendJob>(std::move(stream), responder, std::move(out)));
}

void SessionService::Ask(const HttpRequest& request, int owner, const std::string& id,
                         const std::shared_ptr<HttpResponder>& responder) {
  absl::StatusOr<json> body = BodyObject(request.body, /*empty_ok=*/false);
  if (!body.ok()) {
    RespondError(*responder, body.status());
    return;
  }
  for (const char* refused : {"prompt", "messages", "n", "longview", "best_of", "echo"}) {
    if (body->contains(refused)) {
      RespondError(*responder,
                   InvalidParam(refused, absl::StrCat(refused, " is not an ask field: the prompt "
                                                               "is the session and `question`; "
                                                               "the mode is the session's")));
      return;
    }
  }
  const json* q = body->contains("question") ? &(*body)["question"] : nullptr;
  if (q == nullptr || !q->is_string() || q->get<std::string>().empty()) {
    RespondError(*responder, InvalidParam("question", "question must be a non-empty string"));
    return;
  }
  bool append = false;
  if (body->contains("append")) {
    if (!(*body)["append"].is_boolean()) {
      RespondError(*responder, InvalidParam("append", "append must be true or false"));
      return;
    }
    append = (*body)["append"].get<bool>();
  }
  const std::string question = q->get<std::string>();
  // The sampling fields as /v1/completions parses them.
  json completion = *body;
  completion.erase("question");
  completion.erase("append");
  completion["prompt"] = question;
  absl::StatusOr<ApiRequest> r = ParseApiRequest(ApiKind::kCompletion, completion.dump());
  if (!r.ok()) {
    RespondError(*responder, r.status());
    return;
  }
  if (absl::Status st = CheckModelName(r->model, options_.served_model_name); !st.ok()) {
    RespondError(*responder, st);
    return;
  }
  absl::StatusOr<SessionSnapshot> session = store_.Get(owner, id);
  if (!session.ok()) {
    RespondError(*responder, session.status());
    return;
  }
  const std::vector<int32_t> question_tokens =
      loop_->model().tokenizer->Encode(question, /*add_special=*/false);
  if (question_tokens.empty()) {
    RespondError(*responder, InvalidParam("question", "question encodes to no tokens"));
    return;
  }
  const std::string request_id = NewRequestId("sessask-");
  GenerationRequest g;
  g.request_id = request_id;
  g.prompt_tokens = session->tokens;
  g.embeddings = session->embeddings;
  g.prompt_tokens.insert(g.prompt_tokens.end(), question_tokens.begin(), question_tokens.end());
  g.sampling = r->sampling;
  g.max_tokens = r->max_tokens.value_or(16);
  g.stop = r->stop;
  g.ignore_eos = r->ignore_eos;
  g.logprobs = r->logprobs;
  g.attention = session->attention;
  const int64_t num_prompt = static_cast<int64_t>(g.prompt_tokens.size());
  // The mode's limit (a dense session: the context), naming what went past it.
  const int64_t limit = session->attention->MaxSequenceLength(context_length_);
  if (num_prompt >= limit || num_prompt > limit - g.max_tokens) {
    const bool question_alone = num_prompt >= limit || !r->max_tokens.has_value();
    RespondError(*responder,
                 WithCode(InvalidParam(question_alone ? "question" : "max_tokens",
                                       absl::StrFormat(
                                           "%s: the session's %d tokens, the question's %d and "
                                           "max_tokens %d exceed the %s session's limit of %d "
                                           "tokens (the model's context)",
                                           question_alone ? "question" : "max_tokens",
                                           session->tokens.size(), question_tokens.size(),
                                           g.max_tokens, session->attention->name(), limit)),
                          "context_length_exceeded"));
    return;
  }
  absl::StatusOr<std::shared_ptr<RequestStream>> stream = loop_->Submit(std::move(g));
  if (!stream.ok()) {
    RespondError(*responder, Refused(stream.status(), "question", num_prompt));
    return;
  }
  (void)store_.CountAsk(owner, id);
  JobSpec spec;
  spec.kind = ApiKind::kCompletion;
  spec.id = request_id;
  spec.model = options_.served_model_name;
  spec.created = NowSeconds();
  spec.stream = r->stream;
  spec.include_usage = r->include_usage;
  spec.logprobs = r->logprobs;
  spec.tokens_as_ids = r->tokens_as_ids;
  if (append) {
    spec.on_success = [this, owner, id, question_tokens](
                          const std::vector<std::vector<int32_t>>& answers) {
      std::vector<int32_t> turn = question_tokens;
      turn.insert(turn.end(), answers.at(0).begin(), answers.at(0).end());
      // The answer's KV is in the cache already (it was just computed): nothing to submit.
      absl::StatusOr<SessionSnapshot> s = store_.Append(
          owner, id, turn, "question", [](const SessionSnapshot&) { return absl::OkStatus(); });
      if (!s.ok()) {
        std::fprintf(stderr, "longview: session %s: the question and answer were not appended: %s\n",
                     id.c_str(), std::string(s.status().message()).c_str());
      }
    };
  }
  auto job = std::make_shared<GenerationJob>(std::move(spec),
                                             std::vector<std::shared_ptr<RequestStream>>{*stream},
                                             responder, loop_->model().tokenizer.get());
  job->Begin();
  pump_->Add(std::move(job));
}

}  // namespace longview
