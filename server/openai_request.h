// Parsing and validation of OpenAI `/v1/completions` and `/v1/chat/completions` request bodies
// into one ApiRequest. Every error is InvalidArgument whose message and `param` payload name the
// offending field (see server/api_error.h). Checks that need the model (model name, token ids,
// context length) happen later, in the service.
//
//   ASSIGN_OR_RETURN(ApiRequest r, ParseApiRequest(ApiKind::kChat, body));
//
// Accepted: model, prompt (string | [string] | [int] | [[int]]), messages (content as a string
// or a list of text parts; name; an assistant's tool_calls, a tool's tool_call_id), for chat
// add_generation_prompt and chat_template_kwargs (an object the chat template sees, as vLLM
// takes it), max_tokens (chat also max_completion_tokens), temperature, top_p,
// top_k, min_p, n, stop (string | [string]), seed, stream, stream_options.include_usage,
// logprobs (completions: int 0..20; chat: bool, with top_logprobs 0..20), presence_penalty,
// frequency_penalty, repetition_penalty, user, ignore_eos, return_tokens_as_token_ids (vLLM's:
// logprobs name tokens "token_id:<id>"), and the extension
// `"longview": {"attention": {"mode": "dense"}}`. Unknown fields are ignored (as vLLM does);
// known OpenAI features this server lacks (echo, suffix, best_of > n, logit_bias, tools,
// non-text response_format) are refused by name.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/attention/attention_mode.h"
#include "kvcache/kv_policy.h"
#include "engine/sampling/sampler.h"
#include "engine/text/chat_template.h"
#include "nlohmann/json.hpp"

namespace longview {

enum class ApiKind { kCompletion, kChat };

// One completions prompt: text, or token ids.
struct PromptInput {
  bool is_tokens = false;
  std::string text;
  std::vector<int32_t> tokens;
};

struct ApiRequest {
  ApiKind kind = ApiKind::kCompletion;
  std::string model;                  // "" when absent
  std::vector<PromptInput> prompts;   // completions: one or more
  std::vector<ChatMessage> messages;  // chat
  bool add_generation_prompt = true;  // chat
  std::string chat_template_kwargs;   // chat: a JSON object's text, "" when absent or empty
  std::optional<int64_t> max_tokens;  // absent: 16 (completions), rest of the context (chat)
  SamplingParams sampling;
  int32_t n = 1;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;
  int32_t logprobs = -1;  // -1: none; k >= 0: the chosen token's logprob plus the top k
  bool ignore_eos = false;
  bool tokens_as_ids = false;  // return_tokens_as_token_ids
  std::string user;
  std::string attention_mode = "dense";
  Attention attention;
  // `longview.kv` (kvcache/kv_policy.h); unset: the server's default (--kv-policy).
  std::optional<KvPolicySpec> kv_policy;
};

// `longview.attention` (the object itself: {"mode": "sliding_window", "window": 4096, ...}),
// parsed by the mode registry; errors name the field ("longview.attention.window").
absl::StatusOr<Attention> ParseAttentionObject(const nlohmann::ordered_json& attention);

// Parses a request body. `body` must be a JSON object.
absl::StatusOr<ApiRequest> ParseApiRequest(ApiKind kind, std::string_view body);

// vLLM's POST /tokenize: {"prompt": "...", "add_special_tokens": true} or {"messages": [...],
// "add_generation_prompt": true, "add_special_tokens": false}; "model" optional.
struct TokenizeRequest {
  std::string model;
  bool is_chat = false;
  std::string prompt;                 // completion form
  std::vector<ChatMessage> messages;  // chat form
  bool add_special_tokens = true;     // default true for a prompt, false for messages
  bool add_generation_prompt = true;  // messages
};
absl::StatusOr<TokenizeRequest> ParseTokenizeRequest(std::string_view body);

// vLLM's POST /detokenize: {"tokens": [ids...]}; "model" optional.
struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};
absl::StatusOr<DetokenizeRequest> ParseDetokenizeRequest(std::string_view body);

}  // namespace longview
