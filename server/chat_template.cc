// Chat templates: rendering of the four built-in families and the plain fallback.
#include "server/chat_template.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace longview {
namespace {

std::string Trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

bool IsSystem(const ChatMessage& m) { return m.role == "system" || m.role == "developer"; }

// Leading system messages joined into one prompt; the rest of the conversation after them.
std::pair<std::string, std::vector<ChatMessage>> SplitSystem(
    const std::vector<ChatMessage>& messages) {
  std::string system;
  size_t i = 0;
  for (; i < messages.size() && IsSystem(messages[i]); ++i) {
    if (!system.empty()) system += "\n";
    system += messages[i].content;
  }
  return {system, std::vector<ChatMessage>(messages.begin() + i, messages.end())};
}

// Llama-2 chat: "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] U2 [/INST]".
std::string RenderLlama2(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  auto [system, rest] = SplitSystem(messages);
  std::string out;
  bool first_user = true;
  for (const ChatMessage& m : rest) {
    if (m.role == "assistant") {
      out += " " + Trim(m.content) + " " + t.eos_token;
      continue;
    }
    std::string content = m.content;
    if (first_user && !system.empty()) {
      content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
    }
    first_user = false;
    out += t.bos_token + "[INST] " + Trim(content) + " [/INST]";
  }
  if (first_user && !system.empty()) {
    out += t.bos_token + "[INST] <<SYS>>\n" + system + "\n<</SYS>>\n\n [/INST]";
  }
  return out;
}

// Llama-3 instruct: header-delimited turns, then an open assistant header.
std::string RenderLlama3(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  std::string out = t.bos_token;
  for (const ChatMessage& m : messages) {
    std::string role = m.role == "developer" ? "system" : m.role;
    out += "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + Trim(m.content) + "<|eot_id|>";
  }
  return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
}

// Mistral instruct (v0.1 form): "<s>[INST] U [/INST]A</s>[INST] U2 [/INST]". A system prompt
// is prepended to the first user message, separated by a blank line.
std::string RenderMistral(const ChatTemplate& t, const std::vector<ChatMessage>& messages) {
  auto [system, rest] = SplitSystem(messages);
  std::string out = t.bos_token;
  bool first_user = true;
  for (const ChatMessage& m : rest) {
    if (m.role == "assistant") {
      out += m.content + t.eos_token;
      continue;
    }
    std::string content = m.content;
    if (first_user && !system.empty()) content = system + "\n\n" + content;
    first_user = false;
    out += "[INST] " + content + " [/INST]";
  }
  if (first_user && !system.empty()) out += "[INST] " + system + " [/INST]";
  return out;
}

// ChatML (Qwen): "<|im_start|>role\ncontent<|im_end|>\n" per message, then the open turn.
std::string RenderChatMl(const std::vector<ChatMessage>& messages) {
  std::string out;
  for (const ChatMessage& m : messages) {
    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  }
  return out + "<|im_start|>assistant\n";
}

std::string RenderPlain(const std::vector<ChatMessage>& messages) {
  std::string out;
  for (const ChatMessage& m : messages) out += m.role + ": " + m.content + "\n";
  return out + "assistant:";
}

// A special-token field of tokenizer_config.json: a string, an AddedToken object or null.
absl::Status ReadTokenText(const nlohmann::json& cfg, const char* key, const std::string& path,
                           std::string* out) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return absl::OkStatus();
  if (it->is_string()) {
    *out = it->get<std::string>();
  } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    *out = (*it)["content"].get<std::string>();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", key, " must be a string or an object with \"content\""));
  }
  return absl::OkStatus();
}

}  // namespace

const char* ChatTemplateKindName(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::kPlain:
      return "plain";
    case ChatTemplateKind::kLlama2:
      return "llama2";
    case ChatTemplateKind::kLlama3:
      return "llama3";
    case ChatTemplateKind::kMistral:
      return "mistral";
    case ChatTemplateKind::kChatMl:
      return "chatml";
  }
  return "plain";
}

absl::StatusOr<ChatTemplateKind> ParseChatTemplateKind(std::string_view name) {
  if (name == "plain") return ChatTemplateKind::kPlain;
  if (name == "llama2") return ChatTemplateKind::kLlama2;
  if (name == "llama3") return ChatTemplateKind::kLlama3;
  if (name == "mistral") return ChatTemplateKind::kMistral;
  if (name == "chatml" || name == "qwen") return ChatTemplateKind::kChatMl;
  return absl::InvalidArgumentError(
      absl::StrCat("--chat-template: unknown template '", std::string(name),
                   "' (expected llama2, llama3, mistral, chatml or plain)"));
}

ChatTemplateKind DetectChatTemplate(std::string_view jinja) {
  if (jinja.find("<|start_header_id|>") != std::string_view::npos) return ChatTemplateKind::kLlama3;
  if (jinja.find("<|im_start|>") != std::string_view::npos) return ChatTemplateKind::kChatMl;
  if (jinja.find("<<SYS>>") != std::string_view::npos) return ChatTemplateKind::kLlama2;
  if (jinja.find("[INST]") != std::string_view::npos) return ChatTemplateKind::kMistral;
  return ChatTemplateKind::kPlain;
}

absl::StatusOr<ChatTemplate> LoadChatTemplate(const std::string& model_dir,
                                              const std::string& forced) {
  ChatTemplate t;
  std::string path = model_dir + "/tokenizer_config.json";
  std::ifstream f(path);
  if (f) {
    nlohmann::json cfg = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (cfg.is_discarded() || !cfg.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
    }
    RETURN_IF_ERROR(ReadTokenText(cfg, "bos_token", path, &t.bos_token));
    RETURN_IF_ERROR(ReadTokenText(cfg, "eos_token", path, &t.eos_token));
    auto it = cfg.find("chat_template");
    if (it != cfg.end() && it->is_string()) {
      t.kind = DetectChatTemplate(it->get<std::string>());
    } else if (it != cfg.end() && it->is_array()) {
      // Named templates ([{"name": "default", "template": ...}]): use "default".
      for (const auto& entry : *it) {
        if (entry.is_object() && entry.value("name", "") == "default" &&
            entry.contains("template") && entry["template"].is_string()) {
          t.kind = DetectChatTemplate(entry["template"].get<std::string>());
        }
      }
    }
  }
  if (!forced.empty()) {
    ASSIGN_OR_RETURN(t.kind, ParseChatTemplateKind(forced));
  }
  return t;
}

std::string RenderChat(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages) {
  switch (tmpl.kind) {
    case ChatTemplateKind::kLlama2:
      return RenderLlama2(tmpl, messages);
    case ChatTemplateKind::kLlama3:
      return RenderLlama3(tmpl, messages);
    case ChatTemplateKind::kMistral:
      return RenderMistral(tmpl, messages);
    case ChatTemplateKind::kChatMl:
      return RenderChatMl(messages);
    case ChatTemplateKind::kPlain:
      break;
  }
  return RenderPlain(messages);
}

std::vector<int32_t> EncodeChat(const ChatTemplate& tmpl, const Tokenizer& tokenizer,
                                const std::string& rendered) {
  if (tmpl.kind == ChatTemplateKind::kPlain) return tokenizer.Encode(rendered, true);
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos < rendered.size()) {
    // The nearest BOS or EOS text at or after pos.
    size_t b = tmpl.bos_token.empty() ? std::string::npos : rendered.find(tmpl.bos_token, pos);
    size_t e = tmpl.eos_token.empty() ? std::string::npos : rendered.find(tmpl.eos_token, pos);
    size_t next = std::min(b, e);
    std::string_view text(rendered.data() + pos,
                          (next == std::string::npos ? rendered.size() : next) - pos);
    if (!text.empty()) {
      std::vector<int32_t> part = tokenizer.Encode(text, false);
      ids.insert(ids.end(), part.begin(), part.end());
    }
    if (next == std::string::npos) break;
    bool is_bos = next == b;
    int32_t id = is_bos ? tokenizer.bos_id() : tokenizer.eos_id();
    const std::string& token = is_bos ? tmpl.bos_token : tmpl.eos_token;
    if (id >= 0) {
      ids.push_back(id);
    } else {
      std::vector<int32_t> part = tokenizer.Encode(token, false);
      ids.insert(ids.end(), part.begin(), part.end());
    }
    pos = next + token.size();
  }
  return ids;
}

}  // namespace longview
