// Jinja chat templates: a template from its source, and the request as its variables.
#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/text/chat_template.h"
#include "engine/text/internal/jinja_chat.h"
#include "engine/text/jinja/json_value.h"
#include "engine/text/jinja/template.h"

namespace longview {
namespace {

using ordered_json = nlohmann::ordered_json;

jinja::Value Key(const char* k) { return jinja::Value::Str(jinja::Text::Template(k)); }
jinja::Value ClientString(const std::string& s) {
  return jinja::Value::Str(jinja::Text::Client(s));
}

// vLLM's form of an OpenAI tool_calls list: each call's function.arguments, JSON text, parsed
// to an object (empty or absent: {}).
absl::StatusOr<jinja::Value> ToolCalls(const std::string& text, const std::string& where) {
  ordered_json calls = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (calls.is_discarded() || !calls.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(where, " must be a JSON list"));
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    ordered_json& call = calls[i];
    if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) {
      continue;
    }
    ordered_json& fn = call["function"];
    auto args = fn.find("arguments");
    if (args == fn.end() || args->is_null() ||
        (args->is_string() && args->get_ref<const std::string&>().empty())) {
      fn["arguments"] = ordered_json::object();
    } else if (args->is_string()) {
      ordered_json parsed =
          ordered_json::parse(args->get_ref<const std::string&>(), nullptr, false);
      if (parsed.is_discarded()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "[", i, "].function.arguments is not valid JSON"));
      }
      *args = std::move(parsed);
    }
  }
  return jinja::ValueFromJson(calls, /*client=*/true);
}

// One message as vLLM hands it to the template: role, content, then tool_calls (assistant) or
// tool_call_id (tool), then name.
absl::StatusOr<jinja::Value> Message(const ChatMessage& m, size_t index) {
  auto d = std::make_shared<jinja::Dict>();
  RETURN_IF_ERROR(d->Set(Key("role"), ClientString(m.role)));
  RETURN_IF_ERROR(d->Set(Key("content"), ClientString(m.content)));
  if (!m.tool_calls.empty() && m.role == "assistant") {
    ASSIGN_OR_RETURN(jinja::Value calls,
                     ToolCalls(m.tool_calls, absl::StrCat("messages[", index, "].tool_calls")));
    RETURN_IF_ERROR(d->Set(Key("tool_calls"), std::move(calls)));
  } else if (!m.tool_call_id.empty() && m.role == "tool") {
    RETURN_IF_ERROR(d->Set(Key("tool_call_id"), ClientString(m.tool_call_id)));
  }
  if (!m.name.empty()) RETURN_IF_ERROR(d->Set(Key("name"), ClientString(m.name)));
  return jinja::Value::MakeDict(std::move(d));
}

bool IsReserved(const ChatTemplate& t, const std::string& key) {
  if (key == "messages" || key == "additional_special_tokens") return true;
  for (const auto& [name, text] : t.special_tokens) {
    if (name == key) return true;
  }
  static constexpr const char* kTokenNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                                "pad_token", "cls_token", "mask_token"};
  return std::find(std::begin(kTokenNames), std::end(kTokenNames), key) != std::end(kTokenNames);
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplateFromJinja(
    std::string_view source, std::string origin,
    std::vector<std::pair<std::string, std::string>> special_tokens,
    std::vector<std::string> additional_special_tokens) {
  absl::StatusOr<jinja::Template> parsed = jinja::Template::Parse(source, "chat template");
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", parsed.status().message()));
  }
  ChatTemplate t;
  t.kind = ChatTemplateKind::kJinja;
  t.jinja = std::make_shared<const jinja::Template>(std::move(*parsed));
  t.origin = std::move(origin);
  for (const auto& [name, text] : special_tokens) {
    if (name == "bos_token") t.bos_token = text;
    if (name == "eos_token") t.eos_token = text;
  }
  t.special_tokens = std::move(special_tokens);
  t.additional_special_tokens = std::move(additional_special_tokens);
  return t;
}

namespace internal {

absl::StatusOr<RenderedPrompt> RenderJinjaChat(const ChatTemplate& tmpl,
                                               const std::vector<ChatMessage>& messages,
                                               const ChatRenderOptions& options) {
  std::vector<std::pair<std::string, jinja::Value>> vars;
  for (const auto& [name, text] : tmpl.special_tokens) {
    vars.emplace_back(name, jinja::Value::Str(jinja::Text::Template(text)));
  }
  if (!tmpl.additional_special_tokens.empty()) {
    std::vector<jinja::Value> extra;
    for (const std::string& s : tmpl.additional_special_tokens) {
      extra.push_back(jinja::Value::Str(jinja::Text::Template(s)));
    }
    vars.emplace_back("additional_special_tokens", jinja::Value::List(std::move(extra)));
  }
  std::vector<jinja::Value> list;
  list.reserve(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    ASSIGN_OR_RETURN(jinja::Value m, Message(messages[i], i));
    list.push_back(std::move(m));
  }
  vars.emplace_back("messages", jinja::Value::List(std::move(list)));
  vars.emplace_back("tools", jinja::Value::None());
  vars.emplace_back("documents", jinja::Value::None());
  vars.emplace_back("add_generation_prompt", jinja::Value::Bool(options.add_generation_prompt));
  if (!options.chat_template_kwargs.empty()) {
    ordered_json kwargs =
        ordered_json::parse(options.chat_template_kwargs, nullptr, /*allow_exceptions=*/false);
    if (kwargs.is_discarded() || !kwargs.is_object()) {
      return absl::InvalidArgumentError("chat_template_kwargs must be a JSON object");
    }
    for (const auto& [key, value] : kwargs.items()) {
      if (IsReserved(tmpl, key)) {
        return absl::InvalidArgumentError(
            absl::StrCat("chat_template_kwargs.", key, " cannot be set by a request"));
      }
      absl::StatusOr<jinja::Value> v = jinja::ValueFromJson(value, /*client=*/true);
      if (!v.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("chat_template_kwargs.", key, ": ", v.status().message()));
      }
      vars.emplace_back(key, std::move(*v));
    }
  }
  return tmpl.jinja->Render(vars);
}

}  // namespace internal
}  // namespace longview
