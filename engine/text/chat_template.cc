// Chat templates: rendering of the four built-in families and the plain fallback.
#include "engine/text/chat_template.h"

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

// Every renderer writes the template's own text with b.AppendTemplate (special tokens in it are
// recognised) and what the client sent with b.AppendContent (never a special token).

// Llama-2 chat: "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] U2 [/INST]".
void RenderLlama2(const ChatTemplate& t, const std::vector<ChatMessage>& messages,
                  RenderedPromptBuilder& b) {
  auto [system, rest] = SplitSystem(messages);
  bool first_user = true;
  for (const ChatMessage& m : rest) {
    if (m.role == "assistant") {
      b.AppendTemplate(" ");
      b.AppendContent(Trim(m.content));
      b.AppendTemplate(" " + t.eos_token);
      continue;
    }
    b.AppendTemplate(t.bos_token + "[INST] ");
    if (!first_user || system.empty()) {
      b.AppendContent(Trim(m.content));
    } else {
      // The system prompt goes into the first user turn, and Trim applies to the whole text:
      // cut the trimmed text back into the template's literals and the client's parts.
      const std::string open = "<<SYS>>\n", close = "\n<</SYS>>\n\n";
      const std::string trimmed = Trim(open + system + close + m.content);
      const size_t cuts[] = {0, open.size(), open.size() + system.size(),
                             open.size() + system.size() + close.size(), trimmed.size()};
      for (int i = 0; i < 4; ++i) {
        const size_t from = std::min(cuts[i], trimmed.size());
        const size_t to = std::max(from, std::min(cuts[i + 1], trimmed.size()));
        const std::string_view piece = std::string_view(trimmed).substr(from, to - from);
        if (i % 2 == 0) {
          b.AppendTemplate(piece);
        } else {
          b.AppendContent(piece);
        }
      }
    }
    first_user = false;
    b.AppendTemplate(" [/INST]");
  }
  if (first_user && !system.empty()) {
    b.AppendTemplate(t.bos_token + "[INST] <<SYS>>\n");
    b.AppendContent(system);
    b.AppendTemplate("\n<</SYS>>\n\n [/INST]");
  }
}

// Llama-3 instruct: header-delimited turns, then an open assistant header.
void RenderLlama3(const ChatTemplate& t, const std::vector<ChatMessage>& messages,
                  RenderedPromptBuilder& b) {
  b.AppendTemplate(t.bos_token);
  for (const ChatMessage& m : messages) {
    std::string role = m.role == "developer" ? "system" : m.role;
    b.AppendTemplate("<|start_header_id|>" + role + "<|end_header_id|>\n\n");
    b.AppendContent(Trim(m.content));
    b.AppendTemplate("<|eot_id|>");
  }
  b.AppendTemplate("<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// Mistral instruct (v0.1 form): "<s>[INST] U [/INST]A</s>[INST] U2 [/INST]". A system prompt
// is prepended to the first user message, separated by a blank line.
void RenderMistral(const ChatTemplate& t, const std::vector<ChatMessage>& messages,
                   RenderedPromptBuilder& b) {
  auto [system, rest] = SplitSystem(messages);
  b.AppendTemplate(t.bos_token);
  bool first_user = true;
  for (const ChatMessage& m : rest) {
    if (m.role == "assistant") {
      b.AppendContent(m.content);
      b.AppendTemplate(t.eos_token);
      continue;
    }
    b.AppendTemplate("[INST] ");
    if (first_user && !system.empty()) {
      b.AppendContent(system);
      b.AppendTemplate("\n\n");
    }
    first_user = false;
    b.AppendContent(m.content);
    b.AppendTemplate(" [/INST]");
  }
  if (first_user && !system.empty()) {
    b.AppendTemplate("[INST] ");
    b.AppendContent(system);
    b.AppendTemplate(" [/INST]");
  }
}

// ChatML (Qwen): "<|im_start|>role\ncontent<|im_end|>\n" per message, then the open turn.
void RenderChatMl(const std::vector<ChatMessage>& messages, RenderedPromptBuilder& b) {
  for (const ChatMessage& m : messages) {
    b.AppendTemplate("<|im_start|>" + m.role + "\n");
    b.AppendContent(m.content);
    b.AppendTemplate("<|im_end|>\n");
  }
  b.AppendTemplate("<|im_start|>assistant\n");
}

// No special tokens at all: the whole text is ordinary.
void RenderPlain(const std::vector<ChatMessage>& messages, RenderedPromptBuilder& b) {
  for (const ChatMessage& m : messages) b.AppendContent(m.role + ": " + m.content + "\n");
  b.AppendContent("assistant:");
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
      // Named templates ([{"name": "default", "template": ...}]): use "default". (Compared as
      // JSON: json::value("name", "") would throw on a name that is not a string.)
      for (const auto& entry : *it) {
        if (!entry.is_object()) continue;
        auto name = entry.find("name");
        auto tmpl = entry.find("template");
        if (name != entry.end() && *name == "default" && tmpl != entry.end() && tmpl->is_string()) {
          t.kind = DetectChatTemplate(tmpl->get<std::string>());
        }
      }
    }
  }
  if (!forced.empty()) {
    ASSIGN_OR_RETURN(t.kind, ParseChatTemplateKind(forced));
  }
  return t;
}

RenderedPrompt RenderChat(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages) {
  RenderedPromptBuilder b;
  switch (tmpl.kind) {
    case ChatTemplateKind::kLlama2:
      RenderLlama2(tmpl, messages, b);
      break;
    case ChatTemplateKind::kLlama3:
      RenderLlama3(tmpl, messages, b);
      break;
    case ChatTemplateKind::kMistral:
      RenderMistral(tmpl, messages, b);
      break;
    case ChatTemplateKind::kChatMl:
      RenderChatMl(messages, b);
      break;
    case ChatTemplateKind::kPlain:
      RenderPlain(messages, b);
      break;
  }
  return std::move(b).Take();
}

std::vector<int32_t> EncodeChat(const ChatTemplate& tmpl, const Tokenizer& tokenizer,
                                const RenderedPrompt& rendered) {
  // The built-in templates write BOS themselves; the plain one relies on the tokenizer's.
  return tokenizer.EncodeRendered(rendered, /*add_special=*/tmpl.kind == ChatTemplateKind::kPlain);
}

}  // namespace longview
