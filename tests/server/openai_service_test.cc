// OpenAiService routes without the HTTP transport: /health follows the engine loop's progress,
// and one request's prompts × n is capped and admitted whole.
#include "server/openai_service.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/version.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/request_pump.h"
#include "tests/scheduler/fake_runner.h"

namespace longview {
namespace {

// Records the one response of a route (Respond, or a stream's status).
class RecordingResponder : public HttpResponder {
 public:
  using HttpResponder::Respond;
  void Respond(int status, const std::string&, std::string body,
               const std::vector<std::string>&) override {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = status;
    body_ = std::move(body);
    cv_.notify_all();
  }
  void StartStream(int status, const std::string&, const std::vector<std::string>&) override {
    Respond(status, "", "", {});
  }
  void Write(std::string) override {}
  void EndStream() override {}
  bool closed() const override { return false; }

  // The status, waiting up to 10 s for it (0 if none came).
  int Status() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return status_ != 0; });
    return status_;
  }
  std::string Body() {
    std::lock_guard<std::mutex> lock(mu_);
    return body_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int status_ = 0;
  std::string body_;
};

std::shared_ptr<const LoadedModel> Model() {
  static std::shared_ptr<const LoadedModel> lm = [] {
    auto r = LoadedModel::Load(std::string(LONGVIEW_TEST_DATA_DIR) + "/golden/llama");
    EXPECT_TRUE(r.ok()) << r.status();
    return std::shared_ptr<const LoadedModel>(std::move(*r));
  }();
  return lm;
}

struct Fixture {
  explicit Fixture(EngineLoopOptions eo, OpenAiServiceOptions so = {})
      : loop(Model(), eo), pump(1), service(&loop, &pump, WithName(std::move(so))) {
    loop.Start();
  }
  ~Fixture() {
    pump.Stop();
    loop.Stop();
  }
  static OpenAiServiceOptions WithName(OpenAiServiceOptions so) {
    so.served_model_name = "llama";
    return so;
  }
  std::shared_ptr<RecordingResponder> Call(const std::string& method, const std::string& path,
                                           const std::string& body = "") {
    HttpRequest r;
    r.method = method;
    r.path = path;
    r.body = body;
    auto w = std::make_shared<RecordingResponder>();
    service.Handle(std::move(r), w);
    return w;
  }
  EngineLoop loop;
  RequestPump pump;
  OpenAiService service;
};

TEST(OpenAiServiceTest, HealthIsUnavailableWhileTheEngineStalls) {
  auto runner = std::make_shared<test::GatedRunner>(
      64, 16, static_cast<int32_t>(Model()->config.vocab_size));
  EngineLoopOptions eo;
  eo.runner = runner;
  eo.num_kv_pages = 64;
  OpenAiServiceOptions so;
  so.max_stall_seconds = 0.2;
  Fixture f(eo, so);
  EXPECT_EQ(f.Call("GET", "/health")->Status(), 200);
  auto gen = f.Call("POST", "/v1/completions",
                    R"({"prompt": [5, 6, 7], "max_tokens": 2, "ignore_eos": true})");
  runner->WaitEntered();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  auto health = f.Call("GET", "/health");
  EXPECT_EQ(health->Status(), 503);
  EXPECT_NE(health->Body().find("stalled"), std::string::npos) << health->Body();
  runner->Open();
  EXPECT_EQ(gen->Status(), 200);
  int status = 503;
  for (int i = 0; i < 200 && status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    status = f.Call("GET", "/health")->Status();
  }
  EXPECT_EQ(status, 200);
}

TEST(OpenAiServiceTest, PromptsTimesNIsCappedBeforeTokenizing) {
  OpenAiServiceOptions so;
  so.max_seqs_per_request = 6;
  Fixture f(EngineLoopOptions{}, so);
  auto many = f.Call("POST", "/v1/completions",
                     R"({"prompt": ["a", "b", "c", "d"], "n": 2, "max_tokens": 1})");
  EXPECT_EQ(many->Status(), 400);
  auto body = nlohmann::json::parse(many->Body());
  EXPECT_EQ(body["error"]["param"], "prompt") << many->Body();
  EXPECT_NE(body["error"]["message"].get<std::string>().find("8 sequences"), std::string::npos);
  auto n = f.Call("POST", "/v1/completions", R"({"prompt": "a", "n": 7, "max_tokens": 1})");
  EXPECT_EQ(n->Status(), 400);
  EXPECT_EQ(nlohmann::json::parse(n->Body())["error"]["param"], "n") << n->Body();
  auto ok = f.Call("POST", "/v1/completions",
                   R"({"prompt": ["a", "b", "c"], "n": 2, "max_tokens": 1})");
  EXPECT_EQ(ok->Status(), 200) << ok->Body();
}

// A request whose prompts do not all fit the queue leaves none of them queued.
TEST(OpenAiServiceTest, ARefusedRequestLeavesNothingQueued) {
  auto runner = std::make_shared<test::GatedRunner>(
      64, 16, static_cast<int32_t>(Model()->config.vocab_size));
  EngineLoopOptions eo;
  eo.runner = runner;
  eo.num_kv_pages = 64;
  eo.max_queue = 3;
  Fixture f(eo);
  auto first = f.Call("POST", "/v1/completions", R"({"prompt": [5, 6], "max_tokens": 1})");
  runner->WaitEntered();  // held in its step (and counted as waiting until it is done)
  auto big = f.Call("POST", "/v1/completions",
                    R"({"prompt": [[5], [6], [7]], "max_tokens": 1})");
  EXPECT_EQ(big->Status(), 429) << big->Body();
  auto two = f.Call("POST", "/v1/completions", R"({"prompt": [[5], [6]], "max_tokens": 1})");
  runner->Open();
  EXPECT_EQ(first->Status(), 200);
  EXPECT_EQ(two->Status(), 200) << two->Body();
}


TEST(OpenAiServiceTest, PromptBytesAreCappedBeforeTokenizing) {
  OpenAiServiceOptions so;
  so.max_prompt_bytes = 100;
  Fixture f(EngineLoopOptions{}, so);
  const std::string big(101, 'x');
  auto p = f.Call("POST", "/v1/completions",
                  R"({"max_tokens": 1, "prompt": ")" + big + R"("})");
  EXPECT_EQ(p->Status(), 400);
  auto body = nlohmann::json::parse(p->Body());
  EXPECT_EQ(body["error"]["param"], "prompt") << p->Body();
  EXPECT_NE(body["error"]["message"].get<std::string>().find("101 bytes"), std::string::npos);
  auto chat = f.Call("POST", "/v1/chat/completions",
                     R"({"max_tokens": 1, "messages": [{"role": "user", "content": ")" +
                         std::string(60, 'y') + R"("}, {"role": "user", "content": ")" +
                         std::string(60, 'z') + R"("}]})");
  EXPECT_EQ(chat->Status(), 400);
  EXPECT_EQ(nlohmann::json::parse(chat->Body())["error"]["param"], "messages") << chat->Body();
  auto fits = f.Call("POST", "/v1/completions",
                     R"({"max_tokens": 1, "prompt": ")" + std::string(100, 'x') + R"("})");
  EXPECT_EQ(fits->Status(), 200) << fits->Body();
}

// With a frontend pool, generation requests are parsed and tokenized there: the caller (an io
// thread) returns at once even while the pool is busy, and /health is answered inline.
TEST(OpenAiServiceTest, GenerationRunsOnTheFrontendPoolNotTheCaller) {
  FrontendPool pool(1);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  pool.Post([&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
  });
  OpenAiServiceOptions so;
  so.frontend = &pool;
  Fixture f(EngineLoopOptions{}, so);
  auto gen = f.Call("POST", "/v1/completions", R"({"prompt": "hello", "max_tokens": 2})");
  EXPECT_EQ(pool.queued(), 1);  // waiting behind the busy thread; Call returned
  EXPECT_EQ(f.Call("GET", "/health")->Status(), 200);
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  EXPECT_EQ(gen->Status(), 200) << gen->Body();
  pool.Stop();
}


TEST(OpenAiServiceTest, VersionModelByIdTokenizeAndDetokenizeAsVllmShapesThem) {
  Fixture f(EngineLoopOptions{});
  auto v = f.Call("GET", "/version");
  ASSERT_EQ(v->Status(), 200);
  EXPECT_EQ(nlohmann::json::parse(v->Body())["version"], kVersion);
  auto m = f.Call("GET", "/v1/models/llama");
  ASSERT_EQ(m->Status(), 200) << m->Body();
  EXPECT_EQ(nlohmann::json::parse(m->Body())["id"], "llama");
  EXPECT_EQ(f.Call("GET", "/v1/models/other")->Status(), 404);

  const Tokenizer& tok = *Model()->tokenizer;
  auto t = f.Call("POST", "/tokenize", R"({"prompt": "Hello world"})");
  ASSERT_EQ(t->Status(), 200) << t->Body();
  auto tj = nlohmann::json::parse(t->Body());
  EXPECT_EQ(tj["tokens"].get<std::vector<int32_t>>(), tok.Encode("Hello world", true));
  EXPECT_EQ(tj["count"], tok.Encode("Hello world", true).size());
  EXPECT_EQ(tj["max_model_len"], Model()->config.max_position_embeddings);
  auto no_special =
      f.Call("POST", "/tokenize", R"({"prompt": "Hello world", "add_special_tokens": false})");
  EXPECT_EQ(nlohmann::json::parse(no_special->Body())["tokens"].get<std::vector<int32_t>>(),
            tok.Encode("Hello world", false));
  auto chat = f.Call("POST", "/tokenize", R"({"messages": [{"role": "user", "content": "Hi"}]})");
  ASSERT_EQ(chat->Status(), 200) << chat->Body();
  EXPECT_GT(nlohmann::json::parse(chat->Body())["count"].get<int>(), 2);

  auto d = f.Call("POST", "/detokenize",
                  nlohmann::json{{"tokens", tok.Encode("Hello world", false)}}.dump());
  ASSERT_EQ(d->Status(), 200) << d->Body();
  EXPECT_EQ(nlohmann::json::parse(d->Body())["prompt"], "Hello world");
  auto bad = f.Call("POST", "/detokenize", R"({"tokens": [1, 99999999]})");
  EXPECT_EQ(bad->Status(), 400);
  EXPECT_EQ(nlohmann::json::parse(bad->Body())["error"]["param"], "tokens") << bad->Body();
  EXPECT_EQ(f.Call("GET", "/tokenize")->Status(), 405);
  auto both = f.Call("POST", "/tokenize", R"({"prompt": "a", "messages": []})");
  EXPECT_EQ(both->Status(), 400);
}

TEST(OpenAiServiceTest, ReturnTokensAsTokenIdsNamesLogprobTokensByTheirIds) {
  Fixture f(EngineLoopOptions{});
  const std::string body =
      R"({"prompt": "Hello", "max_tokens": 4, "temperature": 0, "ignore_eos": true,
          "logprobs": 3)";
  auto by_text = f.Call("POST", "/v1/completions", body + "}");
  auto by_id = f.Call("POST", "/v1/completions", body + R"(, "return_tokens_as_token_ids": true})");
  ASSERT_EQ(by_text->Status(), 200) << by_text->Body();
  ASSERT_EQ(by_id->Status(), 200) << by_id->Body();
  const auto text_lp = nlohmann::json::parse(by_text->Body())["choices"][0]["logprobs"];
  const auto id_lp = nlohmann::json::parse(by_id->Body())["choices"][0]["logprobs"];
  ASSERT_EQ(id_lp["tokens"].size(), 4u);
  const Tokenizer& tok = *Model()->tokenizer;
  for (size_t i = 0; i < 4; ++i) {
    const std::string name = id_lp["tokens"][i];
    ASSERT_TRUE(name.starts_with("token_id:")) << name;
    const int32_t id = std::stoi(name.substr(9));
    EXPECT_EQ(tok.TokenBytes(id), text_lp["tokens"][i].get<std::string>());
    EXPECT_EQ(id_lp["token_logprobs"][i], text_lp["token_logprobs"][i]);
    // By text, tokens that share a text (partial UTF-8 bytes) collapse into one entry, which
    // is why ids are asked for; the others must agree.
    std::map<std::string, int> texts;
    for (const auto& [key, lp] : id_lp["top_logprobs"][i].items()) {
      ASSERT_TRUE(key.starts_with("token_id:")) << key;
      ++texts[tok.TokenBytes(std::stoi(key.substr(9)))];
    }
    // (A partial UTF-8 byte is sent as U+FFFD, so such a text is not found by its bytes.)
    int compared = 0;
    for (const auto& [key, lp] : id_lp["top_logprobs"][i].items()) {
      const std::string t = tok.TokenBytes(std::stoi(key.substr(9)));
      if (texts[t] == 1 && text_lp["top_logprobs"][i].contains(t)) {
        ++compared;
        EXPECT_EQ(text_lp["top_logprobs"][i].at(t), lp) << key;
      }
    }
    EXPECT_GE(compared, 1) << id_lp["top_logprobs"][i].dump();
  }
  // The text offsets still count the text's bytes.
  EXPECT_EQ(id_lp["text_offset"], text_lp["text_offset"]);
  auto bad = f.Call("POST", "/v1/completions",
                    R"({"prompt": "a", "return_tokens_as_token_ids": "yes"})");
  EXPECT_EQ(bad->Status(), 400);
  EXPECT_EQ(nlohmann::json::parse(bad->Body())["error"]["param"], "return_tokens_as_token_ids");
}

TEST(OpenAiServiceTest, KnownButUnsupportedVllmFieldsAreRefused) {
  Fixture f(EngineLoopOptions{});
  for (const char* field : {R"("prompt_logprobs": 1)", R"("guided_json": {"type": "object"})",
                            R"("use_beam_search": true)", R"("min_tokens": 4)",
                            R"("stop_token_ids": [5])"}) {
    auto r = f.Call("POST", "/v1/completions",
                    std::string(R"({"prompt": "a", "max_tokens": 1, )") + field + "}");
    EXPECT_EQ(r->Status(), 400) << field;
    const std::string name = nlohmann::json::parse("{" + std::string(field) + "}").begin().key();
    EXPECT_EQ(nlohmann::json::parse(r->Body())["error"]["param"], name) << r->Body();
  }
  // Fields that ask for nothing are fine.
  auto ok = f.Call("POST", "/v1/completions",
                   R"({"prompt": "a", "max_tokens": 1, "min_tokens": 0, "prompt_logprobs": null})");
  EXPECT_EQ(ok->Status(), 200) << ok->Body();
}

}  // namespace
}  // namespace longview

namespace longview {
namespace {

// A model's Jinja chat template on the request path: chat_template_kwargs and
// add_generation_prompt reach it, and a template's raise_exception is a 400 naming `messages`.
TEST(OpenAiServiceTest, JinjaChatTemplateOnTheRequestPath) {
  absl::StatusOr<ChatTemplate> t = ChatTemplateFromJinja(
      "{% if messages[0].content == 'bad' %}{{ raise_exception('Roles must alternate') }}"
      "{% endif %}{{ bos_token }}{{ greeting | default('') }}{% for m in messages %}"
      "{{ m.content }}{% endfor %}{% if add_generation_prompt %}A:{% endif %}",
      "test", {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
  ASSERT_TRUE(t.ok()) << t.status();
  OpenAiServiceOptions so;
  so.chat_template = *t;
  Fixture f(EngineLoopOptions{}, so);
  auto ok = f.Call("POST", "/v1/chat/completions",
                   R"({"max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
                       "chat_template_kwargs": {"greeting": "hello "},
                       "add_generation_prompt": false})");
  EXPECT_EQ(ok->Status(), 200) << ok->Body();
  // "<s>hello hi" is 4 tokens or so; usage shows the prompt was rendered and encoded.
  auto usage = nlohmann::json::parse(ok->Body())["usage"];
  EXPECT_GE(usage["prompt_tokens"].get<int>(), 3) << ok->Body();
  auto raised = f.Call("POST", "/v1/chat/completions",
                       R"({"max_tokens": 1, "messages": [{"role": "user", "content": "bad"}]})");
  EXPECT_EQ(raised->Status(), 400);
  auto error = nlohmann::json::parse(raised->Body())["error"];
  EXPECT_EQ(error["param"], "messages");
  EXPECT_NE(error["message"].get<std::string>().find("Roles must alternate"), std::string::npos)
      << raised->Body();
  auto reserved = f.Call("POST", "/v1/chat/completions",
                         R"({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
                             "chat_template_kwargs": {"bos_token": "</s>"}})");
  EXPECT_EQ(reserved->Status(), 400);
  EXPECT_NE(reserved->Body().find("chat_template_kwargs.bos_token"), std::string::npos)
      << reserved->Body();
}

}  // namespace
}  // namespace longview
