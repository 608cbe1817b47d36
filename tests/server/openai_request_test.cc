// Parsing and validation of OpenAI request bodies: accepted shapes, and every error naming its
// field (in the message and as the error's `param`).
#include "server/openai_request.h"

#include <cctype>
#include <string>

#include "gtest/gtest.h"
#include "server/api_error.h"

namespace longview {
namespace {

TEST(OpenAiRequestTest, ParsesEveryCompletionField) {
  auto r = ParseApiRequest(ApiKind::kCompletion, R"({
      "model": "m", "prompt": "hi", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
      "top_k": 5, "min_p": 0.1, "n": 2, "stop": ["a", "b"], "seed": 42, "stream": true,
      "stream_options": {"include_usage": true}, "logprobs": 3, "presence_penalty": 0.5,
      "frequency_penalty": -0.5, "repetition_penalty": 1.1, "user": "u", "ignore_eos": true,
      "longview": {"attention": {"mode": "dense"}}, "some_unknown_field": 1})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->model, "m");
  ASSERT_EQ(r->prompts.size(), 1u);
  EXPECT_EQ(r->prompts[0].text, "hi");
  EXPECT_EQ(r->max_tokens, 7);
  EXPECT_DOUBLE_EQ(r->sampling.temperature, 0.5);
  EXPECT_DOUBLE_EQ(r->sampling.top_p, 0.9);
  EXPECT_EQ(r->sampling.top_k, 5);
  EXPECT_DOUBLE_EQ(r->sampling.min_p, 0.1);
  EXPECT_EQ(r->n, 2);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->sampling.seed, 42u);
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_EQ(r->logprobs, 3);
  EXPECT_DOUBLE_EQ(r->sampling.presence_penalty, 0.5);
  EXPECT_DOUBLE_EQ(r->sampling.frequency_penalty, -0.5);
  EXPECT_DOUBLE_EQ(r->sampling.repetition_penalty, 1.1);
  EXPECT_EQ(r->user, "u");
  EXPECT_TRUE(r->ignore_eos);
  EXPECT_EQ(r->attention_mode, "dense");
}

TEST(OpenAiRequestTest, SlidingWindowWithSinksBecomesItsAttentionSpec) {
  auto r = ParseApiRequest(ApiKind::kCompletion, R"({"prompt": "hi", "longview": {"attention":
      {"mode": "sliding_window", "window": 4096, "sinks": 4}}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->attention_mode, "sliding_window");
  EXPECT_EQ(r->attention->spec(),
            AttentionSpec(SlidingWindowAttention{.window = 4096, .sinks = 4}));
  auto plain = ParseApiRequest(ApiKind::kChat, R"({"messages": [{"role": "user", "content": "x"}],
      "longview": {"attention": {"mode": "sliding_window", "window": 16}}})");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->attention->spec(), AttentionSpec(SlidingWindowAttention{.window = 16}));
  auto dense = ParseApiRequest(ApiKind::kCompletion, R"({"prompt": "hi"})");
  ASSERT_TRUE(dense.ok());
  EXPECT_EQ(dense->attention->spec(), AttentionSpec(DenseAttention{}));
}

TEST(OpenAiRequestTest, KvPolicyBecomesItsSpecWithTheDefaultsFilledIn) {
  auto r = ParseApiRequest(ApiKind::kCompletion, R"({"prompt": "hi", "longview": {"kv":
      {"policy": "lazy", "budget": 2048, "alpha": 0.0005}}})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->kv_policy.has_value());
  EXPECT_EQ(r->kv_policy->kind, KvPolicyKind::kLazy);
  EXPECT_EQ(r->kv_policy->budget, 2048);
  EXPECT_EQ(r->kv_policy->window, 128);
  EXPECT_DOUBLE_EQ(r->kv_policy->alpha, 0.0005);
  auto none = ParseApiRequest(ApiKind::kCompletion, R"({"prompt": "hi", "longview": {"kv":
      {"policy": "none"}}})");
  ASSERT_TRUE(none.ok()) << none.status();
  ASSERT_TRUE(none->kv_policy.has_value());  // explicitly none: overrides a server default
  EXPECT_FALSE(none->kv_policy->enabled());
  auto absent = ParseApiRequest(ApiKind::kCompletion, R"({"prompt": "hi"})");
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->kv_policy.has_value());  // the server's default
}

TEST(OpenAiRequestTest, DefaultsWhenAbsentOrNull) {
  auto r = ParseApiRequest(ApiKind::kCompletion, R"({"prompt": "x", "max_tokens": null})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->max_tokens.has_value());
  EXPECT_EQ(r->n, 1);
  EXPECT_EQ(r->logprobs, -1);
  EXPECT_FALSE(r->stream);
  EXPECT_FALSE(r->sampling.seed.has_value());
  EXPECT_DOUBLE_EQ(r->sampling.temperature, 1.0);
}

TEST(OpenAiRequestTest, PromptShapes) {
  auto list = ParseApiRequest(ApiKind::kCompletion, R"({"prompt": ["a", "b"]})");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->prompts.size(), 2u);
  EXPECT_EQ(list->prompts[1].text, "b");
  auto ids = ParseApiRequest(ApiKind::kCompletion, R"({"prompt": [1, 5, 9]})");
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->prompts.size(), 1u);
  EXPECT_TRUE(ids->prompts[0].is_tokens);
  EXPECT_EQ(ids->prompts[0].tokens, (std::vector<int32_t>{1, 5, 9}));
  auto lists = ParseApiRequest(ApiKind::kCompletion, R"({"prompt": [[1, 2], [3]]})");
  ASSERT_TRUE(lists.ok());
  ASSERT_EQ(lists->prompts.size(), 2u);
  EXPECT_EQ(lists->prompts[1].tokens, (std::vector<int32_t>{3}));
}

TEST(OpenAiRequestTest, ChatMessagesAndLogprobs) {
  auto r = ParseApiRequest(ApiKind::kChat, R"({
      "messages": [{"role": "system", "content": "be brief"},
                   {"role": "user", "content": [{"type": "text", "text": "he"},
                                                {"type": "text", "text": "llo"}]}],
      "max_completion_tokens": 9, "logprobs": true, "top_logprobs": 2, "stop": "x"})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0].role, "system");
  EXPECT_EQ(r->messages[1].content, "hello");
  EXPECT_EQ(r->max_tokens, 9);
  EXPECT_EQ(r->logprobs, 2);
  EXPECT_EQ(r->stop, (std::vector<std::string>{"x"}));
  auto no_top = ParseApiRequest(ApiKind::kChat,
                                R"({"messages": [{"role": "user", "content": "q"}],
                                    "logprobs": true})");
  ASSERT_TRUE(no_top.ok());
  EXPECT_EQ(no_top->logprobs, 0);
}

// What a chat template needs beyond role and content, as vLLM accepts it: names, tool calls and
// tool results, add_generation_prompt, and chat_template_kwargs with its keys in the client's
// order.
TEST(OpenAiRequestTest, ChatTemplateFields) {
  auto r = ParseApiRequest(ApiKind::kChat, R"({
      "messages": [
        {"role": "user", "content": "weather?", "name": "ann"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "get", "arguments": "{\"z\": 1, \"a\": 2}"}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"}],
      "add_generation_prompt": false,
      "chat_template_kwargs": {"zeta": true, "alpha": {"y": 1, "b": [2]}}})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->messages.size(), 3u);
  EXPECT_EQ(r->messages[0].name, "ann");
  EXPECT_EQ(r->messages[1].content, "");
  EXPECT_EQ(r->messages[1].tool_calls,
            R"([{"id":"c1","type":"function","function":{"name":"get","arguments":"{\"z\": 1, \"a\": 2}"}}])");
  EXPECT_EQ(r->messages[2].tool_call_id, "c1");
  EXPECT_FALSE(r->add_generation_prompt);
  EXPECT_EQ(r->chat_template_kwargs, R"({"zeta":true,"alpha":{"y":1,"b":[2]}})");
  auto plain = ParseApiRequest(ApiKind::kChat, R"({"messages": [{"role": "user", "content": "q"}],
                                                   "chat_template_kwargs": {}})");
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->add_generation_prompt);
  EXPECT_EQ(plain->chat_template_kwargs, "");
}

struct BadCase {
  ApiKind kind;
  const char* body;
  const char* param;
};

class OpenAiRequestErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(OpenAiRequestErrorTest, NamesTheField) {
  const BadCase& c = GetParam();
  auto r = ParseApiRequest(c.kind, c.body);
  ASSERT_FALSE(r.ok()) << c.body;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusParam(r.status()), c.param) << r.status();
  // The message names the field too (its last component at least).
  std::string param = c.param;
  std::string leaf = param.substr(param.rfind('.') == std::string::npos ? 0 : param.rfind('.') + 1);
  if (param != "body") {
    EXPECT_NE(std::string(r.status().message()).find(leaf), std::string::npos) << r.status();
  }
  EXPECT_EQ(HttpStatusFor(r.status()), 400);
}

constexpr ApiKind kC = ApiKind::kCompletion;
constexpr ApiKind kChat = ApiKind::kChat;

INSTANTIATE_TEST_SUITE_P(
    Cases, OpenAiRequestErrorTest,
    ::testing::Values(
        BadCase{kC, "{not json", "body"}, BadCase{kC, "[1, 2]", "body"},
        BadCase{kC, R"({})", "prompt"}, BadCase{kC, R"({"prompt": 5})", "prompt"},
        BadCase{kC, R"({"prompt": []})", "prompt"}, BadCase{kC, R"({"prompt": [1, -2]})", "prompt"},
        BadCase{kC, R"({"prompt": [[1], []]})", "prompt"},
        BadCase{kC, R"({"prompt": ["a", 3]})", "prompt"},
        BadCase{kC, R"({"prompt": "a", "model": 3})", "model"},
        BadCase{kC, R"({"prompt": "a", "max_tokens": -1})", "max_tokens"},
        BadCase{kC, R"({"prompt": "a", "max_tokens": 0})", "max_tokens"},
        BadCase{kC, R"({"prompt": "a", "max_tokens": 2.5})", "max_tokens"},
        BadCase{kC, R"({"prompt": "a", "temperature": -0.1})", "temperature"},
        BadCase{kC, R"({"prompt": "a", "temperature": "hot"})", "temperature"},
        BadCase{kC, R"({"prompt": "a", "top_p": 0})", "top_p"},
        BadCase{kC, R"({"prompt": "a", "top_p": 1.5})", "top_p"},
        BadCase{kC, R"({"prompt": "a", "top_k": -2})", "top_k"},
        BadCase{kC, R"({"prompt": "a", "min_p": 2})", "min_p"},
        BadCase{kC, R"({"prompt": "a", "n": 0})", "n"},
        BadCase{kC, R"({"prompt": "a", "stop": 3})", "stop"},
        BadCase{kC, R"({"prompt": "a", "stop": ["x", 1]})", "stop"},
        BadCase{kC, R"({"prompt": "a", "seed": "s"})", "seed"},
        BadCase{kC, R"({"prompt": "a", "stream": "yes"})", "stream"},
        BadCase{kC, R"({"prompt": "a", "stream_options": {"include_usage": true}})",
                "stream_options"},
        BadCase{kC, R"({"prompt": "a", "stream": true, "stream_options": {"include_usage": 1}})",
                "stream_options.include_usage"},
        BadCase{kC, R"({"prompt": "a", "logprobs": 21})", "logprobs"},
        BadCase{kC, R"({"prompt": "a", "logprobs": true})", "logprobs"},
        BadCase{kC, R"({"prompt": "a", "presence_penalty": 3})", "presence_penalty"},
        BadCase{kC, R"({"prompt": "a", "frequency_penalty": -3})", "frequency_penalty"},
        BadCase{kC, R"({"prompt": "a", "repetition_penalty": 0})", "repetition_penalty"},
        BadCase{kC, R"({"prompt": "a", "user": 1})", "user"},
        BadCase{kC, R"({"prompt": "a", "ignore_eos": 1})", "ignore_eos"},
        BadCase{kC, R"({"prompt": "a", "echo": true})", "echo"},
        BadCase{kC, R"({"prompt": "a", "best_of": 3})", "best_of"},
        BadCase{kC, R"({"prompt": "a", "logit_bias": {"1": 5}})", "logit_bias"},
        BadCase{kC, R"({"prompt": "a", "longview": 1})", "longview"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attn": {}}})", "longview.attn"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": []}})", "longview.attention"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": {"mode": "lizard"}}})",
                "longview.attention.mode"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "top_k": 100}}})",
                "longview.attention.top_k"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "stages": 3}}})",
                "longview.attention.stages"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "stages": [{"chunk": 8}]}}})",
                "longview.attention.stages[0]"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "stages": [{"chunk": 8, "keep": 16, "pool": "x"}]}}})",
                "longview.attention.stages[0]"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "stages": [{"chunk": 8, "keep": 16, "pool": 0, "x": 1}]}}})",
                "longview.attention.stages[0]"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "stages": [{"chunk": 64, "keep": 256}, {"chunk": 64, "keep": 128}]}}})",
                "longview.attention.stages[1]"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "block_size": 0}}})",
                "longview.attention.block_size"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "refresh": 3}}})",
                "longview.attention.refresh"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "refresh": [32, 0, 8]}}})",
                "longview.attention.refresh[1]"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "dense_layers": [1, "x"]}}})",
                "longview.attention.dense_layers[1]"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "dense_top_k": 100}}})",
                "longview.attention.dense_top_k"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "hip", "dense_top_k": 4.5}}})",
                "longview.attention.dense_top_k"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": {"mode": "dense", "top_k": 8}}})",
                "longview.attention.top_k"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": {"mode": "nope"}}})",
                "longview.attention.mode"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": {"mode": 1}}})",
                "longview.attention.mode"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": {"window": 5}}})",
                "longview.attention.window"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": {"mode": "sliding_window"}}})",
                "longview.attention.window"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "sliding_window",
                                                               "window": 0}}})",
                "longview.attention.window"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "sliding_window",
                                                               "window": "8"}}})",
                "longview.attention.window"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "sliding_window",
                                                               "window": 8, "sinks": 9}}})",
                "longview.attention.sinks"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "sliding_window",
                                                               "window": 8, "sinks": -1}}})",
                "longview.attention.sinks"},
        BadCase{kC,
                R"({"prompt": "a", "longview": {"attention": {"mode": "sliding_window",
                                                               "window": 8, "top_k": 3}}})",
                "longview.attention.top_k"},
        BadCase{kC, R"({"prompt": "a", "longview": {"attention": {"sinks": 2}}})",
                "longview.attention.sinks"},
        BadCase{kC, R"({"prompt": "a", "longview": {"kv": 3}})", "longview.kv"},
        BadCase{kC, R"({"prompt": "a", "longview": {"kv": {"policy": "fifo"}}})",
                "longview.kv.policy"},
        BadCase{kC, R"({"prompt": "a", "longview": {"kv": {"policy": "h2o"}}})",
                "longview.kv.budget"},
        BadCase{kC, R"({"prompt": "a", "longview": {"kv": {"policy": "h2o", "budget": "9"}}})",
                "longview.kv.budget"},
        BadCase{kC, R"({"prompt": "a", "longview": {"kv": {"policy": "h2o", "budget": 9,
                                                             "sinks": 2}}})",
                "longview.kv.sinks"},
        BadCase{kC, R"({"prompt": "a", "longview": {"kv": {"policy": "lazy", "budget": 64,
                                                             "alpha": 2}}})",
                "longview.kv.alpha"},
        BadCase{kC, R"({"prompt": "a", "longview": {"kv": {"policy": "snapkv", "budget": 64,
                                                             "kernel": 4}}})",
                "longview.kv.kernel"},
        BadCase{kC, R"({"prompt": "a", "longview": {"kv": {"policy": "h2o", "budget": 64,
                                                             "ratio": 1}}})",
                "longview.kv.ratio"},
        BadCase{kChat, R"({})", "messages"}, BadCase{kChat, R"({"messages": []})", "messages"},
        BadCase{kChat, R"({"messages": [{"content": "x"}]})", "messages"},
        BadCase{kChat, R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages"},
        BadCase{kChat, R"({"messages": [{"role": "user"}]})", "messages"},
        BadCase{kChat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
                "messages"},
        BadCase{kChat, R"({"messages": [{"role": "user", "content": "x"}],
                           "max_completion_tokens": -4})",
                "max_completion_tokens"},
        BadCase{kChat, R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 1})",
                "logprobs"},
        BadCase{kChat, R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})",
                "top_logprobs"},
        BadCase{kChat, R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true,
                           "top_logprobs": 30})",
                "top_logprobs"},
        BadCase{kChat, R"({"messages": [{"role": "user", "content": "x"}],
                           "tools": [{"type": "function"}]})",
                "tools"},
        BadCase{kChat, R"({"messages": [{"role": "user", "content": "x"}],
                           "chat_template_kwargs": [1]})",
                "chat_template_kwargs"},
        BadCase{kChat, R"({"messages": [{"role": "user", "content": "x"}],
                           "add_generation_prompt": "no"})",
                "add_generation_prompt"},
        BadCase{kChat, R"({"messages": [{"role": "user", "content": "x", "name": 3}]})",
                "messages"},
        BadCase{kChat, R"({"messages": [{"role": "assistant", "tool_calls": {}}]})", "messages"},
        BadCase{kChat, R"({"messages": [{"role": "assistant", "tool_calls": [{"id": "a"}]}]})",
                "messages"},
        BadCase{kChat, R"({"messages": [{"role": "assistant", "tool_calls": [
                           {"function": {"name": "f", "arguments": "{nope"}}]}]})",
                "messages"},
        BadCase{kChat, R"({"messages": [{"role": "tool", "content": "x", "tool_call_id": 5}]})",
                "messages"},
        // fuzz/openai_request_fuzzer: a "type" that is not a string used to throw out of the
        // parser, which ended the whole server (an uncaught exception on a frontend thread).
        BadCase{kChat, R"({"messages": [{"role": "user", "content": [{"type": 1, "text": "x"}]}]})",
                "messages"},
        BadCase{kChat, R"({"messages": [{"role": "user", "content": [{"type": null}]}]})",
                "messages"},
        BadCase{kC, R"({"prompt": "a", "response_format": {"type": 1}})", "response_format"},
        BadCase{kChat, R"({"messages": [{"role": "user", "content": "x"}],
                           "response_format": {"type": ["text"]}})",
                "response_format"}),
    // Readable, stable names: the field at fault and the case's index ("3_max_tokens").
    [](const ::testing::TestParamInfo<BadCase>& info) {
      std::string name = std::to_string(info.index) + "_" + info.param.param;
      for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name;
    });

TEST(ApiErrorTest, ErrorJsonHasOpenAiShape) {
  absl::Status s = WithCode(InvalidParam("max_tokens", "max_tokens must be >= 1"), "bad");
  EXPECT_EQ(ErrorJson(s), R"({"error":{"code":"bad","message":"max_tokens must be >= 1",)"
                          R"("param":"max_tokens","type":"invalid_request_error"}})");
  EXPECT_EQ(HttpStatusFor(absl::NotFoundError("x")), 404);
  EXPECT_EQ(HttpStatusFor(absl::UnauthenticatedError("x")), 401);
  EXPECT_EQ(HttpStatusFor(absl::ResourceExhaustedError("x")), 429);
  EXPECT_EQ(HttpStatusFor(WithCode(absl::InvalidArgumentError("x"), "request_too_large")), 413);
  EXPECT_EQ(HttpStatusFor(absl::InternalError("x")), 500);
  EXPECT_EQ(ErrorJson(absl::InternalError("boom")),
            R"({"error":{"code":500,"message":"boom","param":null,"type":"server_error"}})");
}

}  // namespace
}  // namespace longview
