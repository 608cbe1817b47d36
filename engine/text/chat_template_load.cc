// Chat templates: finding a model's template (chat_template.jinja, tokenizer_config.json, or
// --chat-template) and its special tokens.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/text/chat_template.h"

namespace longview {
namespace {

// The special-token variables transformers passes to a template (its special_tokens_map).
constexpr const char* kSpecialTokenNames[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                              "pad_token", "cls_token", "mask_token"};

// The text of a special-token entry: a string, or an AddedToken object's "content". nullopt
// for null.
absl::StatusOr<std::optional<std::string>> TokenText(const nlohmann::json& v,
                                                     const std::string& what) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, " must be a string or an object with \"content\""));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream buffer;
  buffer << f.rdbuf();
  return buffer.str();
}

bool IsFile(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

struct ConfigTemplate {
  std::optional<std::string> source;
  std::vector<std::pair<std::string, std::string>> special_tokens;
  std::vector<std::string> additional_special_tokens;
};

absl::StatusOr<ConfigTemplate> ReadTokenizerConfig(const std::string& path) {
  ConfigTemplate out;
  if (!IsFile(path)) return out;
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  nlohmann::json cfg = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (cfg.is_discarded() || !cfg.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  for (const char* name : kSpecialTokenNames) {
    auto it = cfg.find(name);
    if (it == cfg.end()) continue;
    ASSIGN_OR_RETURN(std::optional<std::string> t, TokenText(*it, absl::StrCat(path, ": ", name)));
    if (t) out.special_tokens.emplace_back(name, std::move(*t));
  }
  if (auto it = cfg.find("additional_special_tokens"); it != cfg.end() && it->is_array()) {
    for (const auto& entry : *it) {
      ASSIGN_OR_RETURN(std::optional<std::string> t,
                       TokenText(entry, absl::StrCat(path, ": additional_special_tokens")));
      if (t) out.additional_special_tokens.push_back(std::move(*t));
    }
  }
  auto it = cfg.find("chat_template");
  if (it != cfg.end() && it->is_string()) {
    out.source = it->get<std::string>();
  } else if (it != cfg.end() && it->is_array()) {
    // Named templates ([{"name": "default", "template": ...}]): use "default". (Compared as
    // JSON: json::value("name", "") would throw on a name that is not a string.)
    for (const auto& entry : *it) {
      if (!entry.is_object()) continue;
      auto name = entry.find("name");
      auto tmpl = entry.find("template");
      if (name != entry.end() && *name == "default" && tmpl != entry.end() && tmpl->is_string()) {
        out.source = tmpl->get<std::string>();
      }
    }
  } else if (it != cfg.end() && !it->is_null()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": chat_template must be a string or a list of {name, template}"));
  }
  return out;
}

}  // namespace

absl::StatusOr<ChatTemplate> LoadChatTemplate(const std::string& model_dir,
                                              const std::string& forced) {
  const std::string config_path = model_dir + "/tokenizer_config.json";
  ASSIGN_OR_RETURN(ConfigTemplate cfg, ReadTokenizerConfig(config_path));
  std::optional<std::string> source = std::move(cfg.source);
  std::string origin = config_path + " (chat_template)";
  // transformers: a chat_template.jinja file beside the config clobbers the config's template.
  if (const std::string file = model_dir + "/chat_template.jinja"; IsFile(file)) {
    ASSIGN_OR_RETURN(source, ReadFile(file));
    origin = file;
  }
  ChatTemplate t;
  if (!forced.empty()) {
    absl::StatusOr<ChatTemplateKind> kind = ParseChatTemplateKind(forced);
    if (kind.ok()) {
      source.reset();
      t.kind = *kind;
    } else if (IsFile(forced)) {
      ASSIGN_OR_RETURN(source, ReadFile(forced));
      origin = absl::StrCat("--chat-template ", forced);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--chat-template: '", forced,
          "' is neither a built-in template (llama2, llama3, mistral, chatml, plain) nor a "
          "readable file"));
    }
  }
  if (source) {
    return ChatTemplateFromJinja(*source, std::move(origin), std::move(cfg.special_tokens),
                                 std::move(cfg.additional_special_tokens));
  }
  for (const auto& [name, text] : cfg.special_tokens) {
    if (name == std::string("bos_token")) t.bos_token = text;
    if (name == std::string("eos_token")) t.eos_token = text;
  }
  return t;
}

}  // namespace longview
