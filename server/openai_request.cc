// Request parsing for the OpenAI-compatible API.
#include "server/openai_request.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/sampling/request_limits.h"
#include "absl/strings/str_cat.h"
#include "engine/attention/attention_mode.h"
#include "server/api_error.h"

namespace longview {
namespace {

// Ordered: objects keep the client's key order (tool-call arguments and chat_template_kwargs reach
// a chat template, whose tojson writes them in that order, as vLLM's json.loads keeps it).
using json = nlohmann::ordered_json;

// The value of `key`, or nullptr when absent or null.
const json* Find(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

const char* TypeName(const json& v) { return v.type_name(); }

// The string at `key` of an object, or "" when it is absent or not a string. (json::value(key,
// "") throws when the value is there with another type: a request must never throw.)
std::string StringOrEmpty(const json& obj, const char* key) {
  const json* v = Find(obj, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : "";
}

absl::Status ReadNumber(const json& obj, const char* key, double lo, double hi, bool lo_open,
                        double* out) {
  const json* v = Find(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number()) {
    return InvalidParam(key, absl::StrCat(key, " must be a number, got ", TypeName(*v)));
  }
  double x = v->get<double>();
  if (!std::isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo)) {
    return InvalidParam(
        key, absl::StrCat(key, " must be in ", lo_open ? "(" : "[", lo, ", ", hi, "], got ", x));
  }
  *out = x;
  return absl::OkStatus();
}

absl::Status ReadInt(const json& obj, const char* key, int64_t lo, int64_t hi,
                     std::optional<int64_t>* out) {
  const json* v = Find(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number_integer()) {
    return InvalidParam(key, absl::StrCat(key, " must be an integer, got ", TypeName(*v)));
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
    return InvalidParam(key, absl::StrCat(key, " must be at most ", hi));
  }
  int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) {
    return InvalidParam(key, absl::StrCat(key, " must be in [", lo, ", ", hi, "], got ", x));
  }
  *out = x;
  return absl::OkStatus();
}

absl::Status ReadBool(const json& obj, const char* key, bool* out) {
  const json* v = Find(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) {
    return InvalidParam(key, absl::StrCat(key, " must be a boolean, got ", TypeName(*v)));
  }
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status ReadString(const json& obj, const char* key, std::string* out) {
  const json* v = Find(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) {
    return InvalidParam(key, absl::StrCat(key, " must be a string, got ", TypeName(*v)));
  }
  *out = v->get<std::string>();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> ReadTokenList(const json& list, const std::string& param) {
  if (list.empty()) return InvalidParam("prompt", absl::StrCat(param, " must not be empty"));
  std::vector<int32_t> ids;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& t = list[i];
    if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
        t.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return InvalidParam("prompt",
                          absl::StrCat(param, "[", i, "] must be a non-negative token id"));
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

absl::Status ReadPrompt(const json& body, ApiRequest* r) {
  const json* p = Find(body, "prompt");
  if (p == nullptr) return InvalidParam("prompt", "prompt is required");
  if (p->is_string()) {
    r->prompts.push_back(PromptInput{false, p->get<std::string>(), {}});
    return absl::OkStatus();
  }
  if (!p->is_array()) {
    return InvalidParam("prompt", absl::StrCat("prompt must be a string, a list of strings, a "
                                               "list of token ids or a list of such lists, got ",
                                               TypeName(*p)));
  }
  if (p->empty()) return InvalidParam("prompt", "prompt must not be an empty list");
  if ((*p)[0].is_number()) {
    ASSIGN_OR_RETURN(std::vector<int32_t> ids, ReadTokenList(*p, "prompt"));
    r->prompts.push_back(PromptInput{true, "", std::move(ids)});
    return absl::OkStatus();
  }
  for (size_t i = 0; i < p->size(); ++i) {
    const json& e = (*p)[i];
    std::string name = absl::StrCat("prompt[", i, "]");
    if (e.is_string()) {
      r->prompts.push_back(PromptInput{false, e.get<std::string>(), {}});
    } else if (e.is_array()) {
      ASSIGN_OR_RETURN(std::vector<int32_t> ids, ReadTokenList(e, name));
      r->prompts.push_back(PromptInput{true, "", std::move(ids)});
    } else {
      return InvalidParam("prompt", absl::StrCat(name,
                                                 " must be a string or a list of token "
                                                 "ids, got ",
                                                 TypeName(e)));
    }
  }
  return absl::OkStatus();
}

// A message's optional name, tool_calls (assistant) and tool_call_id (tool), as vLLM takes them.
absl::Status ReadMessageExtras(const json& msg, const std::string& name, ChatMessage* out) {
  if (const json* n = Find(msg, "name")) {
    if (!n->is_string()) return InvalidParam("messages", name + ".name must be a string");
    out->name = n->get<std::string>();
  }
  if (const json* id = Find(msg, "tool_call_id"); id && out->role == "tool") {
    if (!id->is_string()) return InvalidParam("messages", name + ".tool_call_id must be a string");
    out->tool_call_id = id->get<std::string>();
  }
  const json* calls = Find(msg, "tool_calls");
  if (calls == nullptr || out->role != "assistant") return absl::OkStatus();
  if (!calls->is_array()) return InvalidParam("messages", name + ".tool_calls must be a list");
  for (size_t j = 0; j < calls->size(); ++j) {
    const json& call = (*calls)[j];
    const std::string cname = absl::StrCat(name, ".tool_calls[", j, "]");
    const json* fn = call.is_object() ? Find(call, "function") : nullptr;
    if (fn == nullptr || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string()) {
      return InvalidParam("messages", cname + " must be an object with function.name");
    }
    if (const json* args = Find(*fn, "arguments")) {
      if (args->is_string()) {
        const std::string& text = args->get_ref<const std::string&>();
        if (!text.empty() && json::parse(text, nullptr, false).is_discarded()) {
          return InvalidParam("messages", cname + ".function.arguments is not valid JSON");
        }
      } else if (!args->is_object()) {
        return InvalidParam("messages",
                            cname + ".function.arguments must be a JSON string or an object");
      }
    }
  }
  out->tool_calls = calls->dump();
  return absl::OkStatus();
}

absl::Status ReadMessages(const json& body, ApiRequest* r) {
  const json* m = Find(body, "messages");
  if (m == nullptr) return InvalidParam("messages", "messages is required");
  if (!m->is_array() || m->empty()) {
    return InvalidParam("messages", "messages must be a non-empty list of message objects");
  }
  for (size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    std::string name = absl::StrCat("messages[", i, "]");
    if (!msg.is_object()) return InvalidParam("messages", name + " must be an object");
    ChatMessage out;
    const json* role = Find(msg, "role");
    if (role == nullptr || !role->is_string()) {
      return InvalidParam("messages", name + ".role must be a string");
    }
    out.role = role->get<std::string>();
    if (out.role != "system" && out.role != "developer" && out.role != "user" &&
        out.role != "assistant" && out.role != "tool") {
      return InvalidParam("messages", absl::StrCat(name, ".role '", out.role,
                                                   "' is not one of system, developer, user, "
                                                   "assistant, tool"));
    }
    const json* content = Find(msg, "content");
    if (content == nullptr) {
      if (out.role != "assistant") {
        return InvalidParam("messages", name + ".content is required");
      }
    } else if (content->is_string()) {
      out.content = content->get<std::string>();
    } else if (content->is_array()) {
      for (size_t j = 0; j < content->size(); ++j) {
        const json& part = (*content)[j];
        std::string pname = absl::StrCat(name, ".content[", j, "]");
        if (!part.is_object() || StringOrEmpty(part, "type") != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          return InvalidParam("messages", pname +
                                              " must be {\"type\": \"text\", \"text\": "
                                              "string} (only text parts are supported)");
        }
        out.content += part["text"].get<std::string>();
      }
    } else {
      return InvalidParam("messages", name + ".content must be a string or a list of parts");
    }
    RETURN_IF_ERROR(ReadMessageExtras(msg, name, &out));
    r->messages.push_back(std::move(out));
  }
  return absl::OkStatus();
}

absl::Status ReadStop(const json& body, ApiRequest* r) {
  const json* s = Find(body, "stop");
  if (s == nullptr) return absl::OkStatus();
  if (s->is_string()) {
    if (!s->get<std::string>().empty()) r->stop.push_back(s->get<std::string>());
    return absl::OkStatus();
  }
  if (!s->is_array() || s->size() > static_cast<size_t>(request_limits::kMaxStopStrings)) {
    return InvalidParam("stop", absl::StrCat("stop must be a string or a list of at most ",
                                             request_limits::kMaxStopStrings, " strings"));
  }
  for (size_t i = 0; i < s->size(); ++i) {
    if (!(*s)[i].is_string()) {
      return InvalidParam("stop", absl::StrCat("stop[", i, "] must be a string"));
    }
    if (!(*s)[i].get<std::string>().empty()) r->stop.push_back((*s)[i].get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status ReadLogprobs(const json& body, ApiRequest* r) {
  if (r->kind == ApiKind::kCompletion) {
    std::optional<int64_t> k;
    RETURN_IF_ERROR(ReadInt(body, "logprobs", 0, request_limits::kMaxLogprobs, &k));
    if (k) r->logprobs = static_cast<int32_t>(*k);
    return absl::OkStatus();
  }
  bool want = false;
  RETURN_IF_ERROR(ReadBool(body, "logprobs", &want));
  std::optional<int64_t> top;
  RETURN_IF_ERROR(ReadInt(body, "top_logprobs", 0, request_limits::kMaxLogprobs, &top));
  if (top && !want) {
    return InvalidParam("top_logprobs", "top_logprobs requires logprobs to be true");
  }
  if (want) r->logprobs = static_cast<int32_t>(top.value_or(0));
  return absl::OkStatus();
}

// `longview.kv`: {"policy": "h2o", "budget": 2048, ...}, parsed by kvcache/kv_policy.h.
absl::Status ReadKvPolicy(const json& kv, ApiRequest* r) {
  if (!kv.is_object()) return InvalidParam("longview.kv", "longview.kv must be an object");
  KvPolicyRequest request;
  for (const auto& [key, value] : kv.items()) {
    const std::string field = "longview.kv." + key;
    std::optional<int64_t>* integer = key == "budget"     ? &request.budget
                                      : key == "sinks"    ? &request.sinks
                                      : key == "window"   ? &request.window
                                      : key == "interval" ? &request.interval
                                      : key == "kernel"   ? &request.kernel
                                                          : nullptr;
    if (key == "policy") {
      if (!value.is_string()) return InvalidParam(field, field + " must be a string");
      request.policy = value.get<std::string>();
    } else if (integer != nullptr) {
      if (!value.is_number_integer()) return InvalidParam(field, field + " must be an integer");
      *integer = value.get<int64_t>();
    } else if (key == "alpha") {
      if (!value.is_number()) return InvalidParam(field, field + " must be a number");
      request.alpha = value.get<double>();
    } else {
      return InvalidParam(field, absl::StrCat(field, " is not a known parameter (known: policy, "
                                                     "budget, sinks, window, interval, kernel, "
                                                     "alpha)"));
    }
  }
  std::string bad_field;
  absl::StatusOr<KvPolicySpec> spec = ParseKvPolicy(request, "longview.kv.", &bad_field);
  if (!spec.ok()) return InvalidParam(bad_field, std::string(spec.status().message()));
  r->kv_policy = *spec;
  return absl::OkStatus();
}

// The `longview` extension object: {"attention": {"mode": "sliding_window", "window": 4096,
// "sinks": 4}, "kv": {...}}, the attention parsed by the mode registry
// (engine/attention/attention_mode.h).
absl::Status ReadExtension(const json& body, ApiRequest* r) {
  const json* ext = Find(body, "longview");
  if (ext == nullptr) return absl::OkStatus();
  if (!ext->is_object()) return InvalidParam("longview", "longview must be an object");
  for (const auto& [key, value] : ext->items()) {
    if (key != "attention" && key != "kv") {
      return InvalidParam(
          "longview." + key,
          absl::StrCat("longview.", key, " is not a known field (known: attention, kv)"));
    }
  }
  if (const json* kv = Find(*ext, "kv"); kv != nullptr) RETURN_IF_ERROR(ReadKvPolicy(*kv, r));
  const json* att = Find(*ext, "attention");
  if (att == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(r->attention, ParseAttentionObject(*att));
  r->attention_mode = std::string(r->attention->name());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Attention> ParseAttentionObject(const json& object) {
  const json* att = &object;
  if (!att->is_object()) {
    return InvalidParam("longview.attention", "longview.attention must be an object");
  }
  AttentionRequest request;
  for (const auto& [key, value] : att->items()) {
    const std::string field = "longview.attention." + key;
    if (key == "mode") {
      if (!value.is_string()) return InvalidParam(field, field + " must be a string");
      request.mode = value.get<std::string>();
    } else if (key == "window" || key == "sinks" || key == "top_k" || key == "block_size" ||
               key == "dense_top_k") {
      if (!value.is_number_integer()) return InvalidParam(field, field + " must be an integer");
      (key == "window"       ? request.window
       : key == "sinks"      ? request.sinks
       : key == "top_k"      ? request.top_k
       : key == "block_size" ? request.block_size
                             : request.dense_top_k) = value.get<int64_t>();
    } else if (key == "refresh" || key == "dense_layers") {
      if (!value.is_array()) return InvalidParam(field, field + " must be an array of integers");
      std::vector<int64_t> values;
      for (size_t i = 0; i < value.size(); ++i) {
        if (!value[i].is_number_integer()) {
          const std::string at = absl::StrCat(field, "[", i, "]");
          return InvalidParam(at, at + " must be an integer");
        }
        values.push_back(value[i].get<int64_t>());
      }
      (key == "refresh" ? request.refresh : request.dense_layers) = std::move(values);
    } else if (key == "stages") {
      // [{"chunk": 256, "keep": 32768}, ...]
      if (!value.is_array()) return InvalidParam(field, field + " must be an array");
      request.stages.emplace();
      for (size_t i = 0; i < value.size(); ++i) {
        const json& st = value[i];
        const std::string at = absl::StrCat(field, "[", i, "]");
        const bool pool = st.is_object() && st.contains("pool");
        if (!st.is_object() || st.size() != (pool ? 3u : 2u) || !st.contains("chunk") ||
            !st.contains("keep") || !st["chunk"].is_number_integer() ||
            !st["keep"].is_number_integer() || (pool && !st["pool"].is_number_integer())) {
          return InvalidParam(at, at + " must be {\"chunk\": integer, \"keep\": integer} "
                                       "with an optional \"pool\": integer");
        }
        request.stages->push_back({st["chunk"].get<int64_t>(), st["keep"].get<int64_t>(),
                                   pool ? st["pool"].get<int64_t>() : 0});
      }
    } else {
      return InvalidParam(field, absl::StrCat(field, " is not a known parameter (known: mode, "
                                                     "window, sinks, top_k, block_size, stages, refresh, "
                                                     "dense_layers, dense_top_k)"));
    }
  }
  std::string bad_field;
  absl::StatusOr<Attention> attention =
      ParseAttention(request, "longview.attention.", &bad_field);
  if (!attention.ok()) return InvalidParam(bad_field, std::string(attention.status().message()));
  return *attention;
}

namespace {

// Known OpenAI parameters this server does not implement: refused rather than ignored.
absl::Status RefuseUnsupported(const json& body, const ApiRequest& r) {
  bool echo = false;
  RETURN_IF_ERROR(ReadBool(body, "echo", &echo));
  if (echo) return InvalidParam("echo", "echo is not supported");
  if (const json* s = Find(body, "suffix");
      s && !(s->is_string() && s->get<std::string>().empty())) {
    return InvalidParam("suffix", "suffix is not supported");
  }
  std::optional<int64_t> best_of;
  RETURN_IF_ERROR(ReadInt(body, "best_of", 1, request_limits::kMaxN, &best_of));
  if (best_of && *best_of != r.n) {
    return InvalidParam("best_of", "best_of different from n is not supported");
  }
  if (const json* b = Find(body, "logit_bias"); b && !(b->is_object() && b->empty())) {
    return InvalidParam("logit_bias", "logit_bias is not supported");
  }
  if (const json* t = Find(body, "tools"); t && !(t->is_array() && t->empty())) {
    return InvalidParam("tools", "tools are not supported");
  }
  if (const json* f = Find(body, "response_format");
      f && !(f->is_object() && StringOrEmpty(*f, "type") == "text")) {
    return InvalidParam("response_format", "response_format other than text is not supported");
  }
  // vLLM's extra parameters this server does not implement: refused when they ask for
  // something (null, false, 0 and empty lists ask for nothing).
  static const char* const kVllmExtras[] = {
      "prompt_logprobs",  "guided_json",          "guided_regex",    "guided_choice",
      "guided_grammar",   "guided_decoding_backend", "use_beam_search", "length_penalty",
      "min_tokens",       "truncate_prompt_tokens",  "allowed_token_ids", "bad_words",
      "stop_token_ids",   "logits_processors",    "include_stop_str_in_output"};
  for (const char* key : kVllmExtras) {
    const json* v = Find(body, key);
    if (v == nullptr || v->is_null() || (v->is_boolean() && !v->get<bool>()) ||
        (v->is_number() && v->get<double>() == 0) || (v->is_array() && v->empty())) {
      continue;
    }
    return InvalidParam(key, absl::StrCat(key, " is not supported"));
  }
  if (const json* v = Find(body, "skip_special_tokens"); v && v->is_boolean() && !v->get<bool>()) {
    return InvalidParam("skip_special_tokens", "skip_special_tokens false is not supported");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ApiRequest> ParseApiRequest(ApiKind kind, std::string_view body_text) {
  json body = json::parse(body_text.begin(), body_text.end(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    return InvalidParam("body", "the request body is not valid JSON");
  }
  if (!body.is_object()) return InvalidParam("body", "the request body must be a JSON object");
  ApiRequest r;
  r.kind = kind;
  RETURN_IF_ERROR(ReadString(body, "model", &r.model));
  if (kind == ApiKind::kCompletion) {
    RETURN_IF_ERROR(ReadPrompt(body, &r));
  } else {
    RETURN_IF_ERROR(ReadMessages(body, &r));
    RETURN_IF_ERROR(ReadBool(body, "add_generation_prompt", &r.add_generation_prompt));
    if (const json* k = Find(body, "chat_template_kwargs")) {
      if (!k->is_object()) {
        return InvalidParam("chat_template_kwargs", "chat_template_kwargs must be an object");
      }
      if (!k->empty()) r.chat_template_kwargs = k->dump();
    }
  }
  constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();
  RETURN_IF_ERROR(ReadInt(body, "max_tokens", 1, kMaxInt, &r.max_tokens));
  if (kind == ApiKind::kChat) {
    std::optional<int64_t> mct;
    RETURN_IF_ERROR(ReadInt(body, "max_completion_tokens", 1, kMaxInt, &mct));
    if (mct) r.max_tokens = mct;
  }
  SamplingParams& s = r.sampling;
  RETURN_IF_ERROR(ReadNumber(body, "temperature", request_limits::kMinTemperature,
                             request_limits::kMaxTemperature, false, &s.temperature));
  RETURN_IF_ERROR(ReadNumber(body, "top_p", 0, 1, true, &s.top_p));
  std::optional<int64_t> top_k;
  RETURN_IF_ERROR(ReadInt(body, "top_k", -1, kMaxInt, &top_k));
  if (top_k) s.top_k = static_cast<int32_t>(*top_k);
  RETURN_IF_ERROR(ReadNumber(body, "min_p", 0, 1, false, &s.min_p));
  RETURN_IF_ERROR(ReadNumber(body, "presence_penalty", request_limits::kMinPenalty,
                             request_limits::kMaxPenalty, false, &s.presence_penalty));
  RETURN_IF_ERROR(ReadNumber(body, "frequency_penalty", request_limits::kMinPenalty,
                             request_limits::kMaxPenalty, false, &s.frequency_penalty));
  RETURN_IF_ERROR(ReadNumber(body, "repetition_penalty", 0,
                             request_limits::kMaxRepetitionPenalty, true, &s.repetition_penalty));
  std::optional<int64_t> seed;
  RETURN_IF_ERROR(ReadInt(body, "seed", std::numeric_limits<int64_t>::min(),
                          std::numeric_limits<int64_t>::max(), &seed));
  if (seed) s.seed = static_cast<uint64_t>(*seed);
  std::optional<int64_t> n;
  RETURN_IF_ERROR(ReadInt(body, "n", 1, request_limits::kMaxN, &n));
  if (n) r.n = static_cast<int32_t>(*n);
  RETURN_IF_ERROR(ReadStop(body, &r));
  RETURN_IF_ERROR(ReadBool(body, "stream", &r.stream));
  if (const json* so = Find(body, "stream_options")) {
    if (!so->is_object()) {
      return InvalidParam("stream_options", "stream_options must be an object");
    }
    if (!r.stream) {
      return InvalidParam("stream_options", "stream_options is only allowed when stream is true");
    }
    if (const json* iu = Find(*so, "include_usage")) {
      if (!iu->is_boolean()) {
        return InvalidParam("stream_options.include_usage",
                            "stream_options.include_usage must be a boolean");
      }
      r.include_usage = iu->get<bool>();
    }
  }
  RETURN_IF_ERROR(ReadLogprobs(body, &r));
  RETURN_IF_ERROR(ReadBool(body, "ignore_eos", &r.ignore_eos));
  RETURN_IF_ERROR(ReadBool(body, "return_tokens_as_token_ids", &r.tokens_as_ids));
  RETURN_IF_ERROR(ReadString(body, "user", &r.user));
  RETURN_IF_ERROR(ReadExtension(body, &r));
  RETURN_IF_ERROR(RefuseUnsupported(body, r));
  return r;
}

}  // namespace longview

namespace longview {
namespace {

absl::StatusOr<json> ParseBody(std::string_view body_text) {
  json body = json::parse(body_text.begin(), body_text.end(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return InvalidParam("body", "the request body is not valid JSON");
  if (!body.is_object()) return InvalidParam("body", "the request body must be a JSON object");
  return body;
}

}  // namespace

absl::StatusOr<TokenizeRequest> ParseTokenizeRequest(std::string_view body_text) {
  ASSIGN_OR_RETURN(json body, ParseBody(body_text));
  TokenizeRequest t;
  RETURN_IF_ERROR(ReadString(body, "model", &t.model));
  const bool has_prompt = Find(body, "prompt") != nullptr;
  const bool has_messages = Find(body, "messages") != nullptr;
  if (has_prompt == has_messages) {
    return InvalidParam("prompt", "give exactly one of prompt (a string) and messages");
  }
  if (has_prompt) {
    const json& p = body["prompt"];
    if (!p.is_string()) return InvalidParam("prompt", "prompt must be a string");
    t.prompt = p.get<std::string>();
  } else {
    t.is_chat = true;
    ApiRequest chat;
    RETURN_IF_ERROR(ReadMessages(body, &chat));
    t.messages = std::move(chat.messages);
    t.add_special_tokens = false;
    RETURN_IF_ERROR(ReadBool(body, "add_generation_prompt", &t.add_generation_prompt));
  }
  RETURN_IF_ERROR(ReadBool(body, "add_special_tokens", &t.add_special_tokens));
  return t;
}

absl::StatusOr<DetokenizeRequest> ParseDetokenizeRequest(std::string_view body_text) {
  ASSIGN_OR_RETURN(json body, ParseBody(body_text));
  DetokenizeRequest d;
  RETURN_IF_ERROR(ReadString(body, "model", &d.model));
  const json* tokens = Find(body, "tokens");
  if (tokens == nullptr || !tokens->is_array()) {
    return InvalidParam("tokens", "tokens must be a list of token ids");
  }
  for (size_t i = 0; i < tokens->size(); ++i) {
    const json& v = (*tokens)[i];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        v.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return InvalidParam("tokens", absl::StrCat("tokens[", i, "] must be a non-negative token id"));
    }
    d.tokens.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return d;
}

}  // namespace longview
