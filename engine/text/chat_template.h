// Chat templates: turn OpenAI `messages` into the prompt text and tokens a model was tuned on.
//
// A model's own Jinja template is used when it has one: `chat_template.jinja` in the model
// folder, else `chat_template` of its `tokenizer_config.json` (a string, or a list of
// {name, template} of which "default" is used), else a template string the caller brings
// (ChatTemplateFromJinja: a GGUF's `tokenizer.chat_template`). The template is rendered by
// the Jinja engine of engine/text/jinja/ with the variables transformers and vLLM give it:
// `messages` (role, content, and tool_calls / tool_call_id / name when the client sent them;
// tool-call arguments parsed from their JSON text, as vLLM does), `add_generation_prompt`,
// `tools` and `documents` (none), the special tokens of the tokenizer config (`bos_token`,
// `eos_token`, `unk_token`, `sep_token`, `pad_token`, `cls_token`, `mask_token`,
// `additional_special_tokens`), and the request's `chat_template_kwargs`.
//
// Four families are also built in (Llama-2, Llama-3, Mistral, ChatML/Qwen), for models without
// a template (those get the plain template: one "role: content" line per message, then
// "assistant:") or when `longview serve --chat-template NAME` forces one; `--chat-template FILE`
// forces a Jinja template file.
//
//   ASSIGN_OR_RETURN(ChatTemplate t, LoadChatTemplate(model_dir, /*forced=*/""));
//   ASSIGN_OR_RETURN(RenderedPrompt p, RenderChat(t, messages));  // "<s>[INST] Hi [/INST]"
//   std::vector<int32_t> ids = EncodeChat(t, tokenizer, p);  // the template's "<s>" → BOS id
//
// Special tokens come from the template only (engine/text/rendered_prompt.h). For a Jinja
// template the rule is: bytes the template wrote (its literal text and string literals) and the
// special-token variables above are template text, in which special tokens are recognised;
// everything that came from the request (message fields, chat_template_kwargs) is client text
// and stays client text through whatever the template does with it (the exact rule is in
// engine/text/jinja/value.h). So a user's "</s>" or "<|im_end|>" in content is never a special
// token, under every template. chat_template_kwargs cannot set `messages` or a special-token
// variable.
// Thread-safety: free functions over const values; safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/text/tokenizer.h"

namespace longview {

namespace jinja {
class Template;
}

struct ChatMessage {
  std::string role;  // system | developer | user | assistant | tool
  std::string content;
  std::string name;          // "" when absent
  std::string tool_calls;    // the OpenAI `tool_calls` list as JSON text; "" when absent
  std::string tool_call_id;  // "" when absent
};

enum class ChatTemplateKind { kPlain, kLlama2, kLlama3, kMistral, kChatMl, kJinja };

// "plain", "llama2", "llama3", "mistral", "chatml", "jinja".
const char* ChatTemplateKindName(ChatTemplateKind kind);
// Accepts the names above (and "qwen" for ChatML). InvalidArgument naming the flag otherwise.
absl::StatusOr<ChatTemplateKind> ParseChatTemplateKind(std::string_view name);
// The family whose signature the Jinja template contains; kPlain when none does.
ChatTemplateKind DetectChatTemplate(std::string_view jinja);

struct ChatTemplate {
  ChatTemplateKind kind = ChatTemplateKind::kPlain;
  std::string bos_token = "<s>";  // text that stands for the BOS / EOS ids in rendered prompts
  std::string eos_token = "</s>";
  // kJinja: the parsed template, where it came from (for logs), and the special-token
  // variables it sees: name → text, only those the tokenizer defines.
  std::shared_ptr<const jinja::Template> jinja;
  std::string origin;
  std::vector<std::pair<std::string, std::string>> special_tokens;
  std::vector<std::string> additional_special_tokens;
};

// Reads `model_dir/chat_template.jinja` and `model_dir/tokenizer_config.json` (both may be
// absent: plain template) for the template and the special tokens. `forced` (a --chat-template
// value, may be empty) wins: a built-in name, else a Jinja template file. InvalidArgument
// naming the file or flag on a malformed value or a template that does not parse.
absl::StatusOr<ChatTemplate> LoadChatTemplate(const std::string& model_dir,
                                              const std::string& forced);

// A Jinja chat template from its source (e.g. a GGUF's `tokenizer.chat_template`), with the
// special-token variables the template sees (name → text: "bos_token" → "<s>", ...; bos_token
// and eos_token also become the ChatTemplate's). `origin` names the source in errors.
// InvalidArgument naming `origin`, the line and the column when the template does not parse.
absl::StatusOr<ChatTemplate> ChatTemplateFromJinja(
    std::string_view source, std::string origin,
    std::vector<std::pair<std::string, std::string>> special_tokens,
    std::vector<std::string> additional_special_tokens = {});

struct ChatRenderOptions {
  // Append the opening of the assistant's turn (the built-in templates honour it too).
  bool add_generation_prompt = true;
  // The request's `chat_template_kwargs`: a JSON object's text, or "" for none. Jinja templates
  // only; its values are client text and may override add_generation_prompt, tools, documents.
  std::string chat_template_kwargs;
};

// Renders the conversation; the template's own text is marked as the part where special tokens
// may be recognised. InvalidArgument (a client error) when a Jinja template fails on this
// conversation: raise_exception(...) or a runtime error, naming the template's line and column;
// also for malformed tool_calls JSON or chat_template_kwargs.
absl::StatusOr<RenderedPrompt> RenderChat(const ChatTemplate& tmpl,
                                          const std::vector<ChatMessage>& messages,
                                          const ChatRenderOptions& options = {});

// Tokenizes a rendered prompt: special-token text the template wrote (BOS, EOS, ...) becomes
// the token; everything else, message content included, is ordinary text. The plain template's
// text is encoded with the tokenizer's own BOS / EOS settings; the others write BOS themselves.
std::vector<int32_t> EncodeChat(const ChatTemplate& tmpl, const Tokenizer& tokenizer,
                                const RenderedPrompt& rendered);

}  // namespace longview
