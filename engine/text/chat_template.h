// Chat templates: turn OpenAI `messages` into the prompt text and tokens a model was tuned on.
//
// Four families are built in (Llama-2, Llama-3, Mistral, ChatML/Qwen). A model's family is
// recognised from the `chat_template` Jinja string of its `tokenizer_config.json` by signature
// (`<|start_header_id|>` → Llama-3, `<|im_start|>` → ChatML, `<<SYS>>` → Llama-2, `[INST]` →
// Mistral), or forced by `longview serve --chat-template`. A model without a recognised template
// gets the plain template: one "role: content" line per message, then "assistant:".
//
//   ASSIGN_OR_RETURN(ChatTemplate t, LoadChatTemplate(model_dir, /*forced=*/""));
//   RenderedPrompt p = RenderChat(t, messages);           // p.text == "<s>[INST] Hi [/INST]"
//   std::vector<int32_t> ids = EncodeChat(t, tokenizer, p);  // the template's "<s>" → BOS id
//
// Special tokens come from the template only: text the client sent (message content) is never
// parsed for special tokens, so a user's "</s>" stays text (engine/rendered_prompt.h).
// Thread-safety: free functions over const values; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/text/tokenizer.h"

namespace longview {

struct ChatMessage {
  std::string role;  // system | developer | user | assistant | tool
  std::string content;
};

enum class ChatTemplateKind { kPlain, kLlama2, kLlama3, kMistral, kChatMl };

// "plain", "llama2", "llama3", "mistral", "chatml".
const char* ChatTemplateKindName(ChatTemplateKind kind);
// Accepts the names above (and "qwen" for ChatML). InvalidArgument naming the flag otherwise.
absl::StatusOr<ChatTemplateKind> ParseChatTemplateKind(std::string_view name);
// The family whose signature the Jinja template contains; kPlain when none does.
ChatTemplateKind DetectChatTemplate(std::string_view jinja);

struct ChatTemplate {
  ChatTemplateKind kind = ChatTemplateKind::kPlain;
  std::string bos_token = "<s>";  // text that stands for the BOS / EOS ids in rendered prompts
  std::string eos_token = "</s>";
};

// Reads `model_dir/tokenizer_config.json` (absent is fine: plain template) for `chat_template`,
// `bos_token` and `eos_token`. `forced` (a --chat-template value, may be empty) wins over the
// file. InvalidArgument naming the file or flag on a malformed value.
absl::StatusOr<ChatTemplate> LoadChatTemplate(const std::string& model_dir,
                                              const std::string& forced);

// Renders the conversation with the generation prompt for the assistant's reply appended; the
// template's own text is marked as the part where special tokens may be recognised.
RenderedPrompt RenderChat(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages);

// Tokenizes a rendered prompt: special-token text the template wrote (BOS, EOS, ...) becomes
// the token; everything else, message content included, is ordinary text. The plain template's
// text is encoded with the tokenizer's own BOS / EOS settings.
std::vector<int32_t> EncodeChat(const ChatTemplate& tmpl, const Tokenizer& tokenizer,
                                const RenderedPrompt& rendered);

}  // namespace longview
