// The gRPC frontend against a real EngineLoop on the golden Llama model, through an in-process
// gRPC C++ client over loopback: greedy streaming equals Generate(), tokenization round trips,
// model listing, field-naming INVALID_ARGUMENT errors, API-key auth, health, cancellation and
// shutdown.
#include "server/grpc_service.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "scheduler/generator.h"
#include "gtest/gtest.h"
#include "tests/scheduler/fake_runner.h"
#include "tests/support/attention.h"
#include "proto/longview.grpc.pb.h"
#include "scheduler/engine_loop.h"

namespace longview {
namespace {

namespace v1 = ::longview::v1;
const std::string kModelDir = std::string(LONGVIEW_TEST_DATA_DIR) + "/golden/llama";
constexpr char kPrompt[] = "Once upon a time";
constexpr char kApiKey[] = "test-key-123";

std::unique_ptr<v1::Generation::Stub> Connect(int port) {
  return v1::Generation::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
}

void SetDeadline(grpc::ClientContext* ctx, int seconds = 60) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

struct Collected {
  grpc::Status status;
  std::vector<v1::GenerateResponse> messages;
  std::map<int, std::string> text;             // by choice index
  std::map<int, std::vector<int32_t>> tokens;  // by choice index
  std::map<int, v1::FinishReason> finish;      // by choice index
};

Collected RunGenerate(v1::Generation::Stub& stub, const v1::GenerateRequest& req,
                      const std::string& api_key = "") {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  if (!api_key.empty()) ctx.AddMetadata("authorization", "Bearer " + api_key);
  Collected c;
  auto reader = stub.Generate(&ctx, req);
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    for (const v1::ChoiceDelta& d : resp.choices()) {
      c.text[d.index()] += d.text();
      c.tokens[d.index()].insert(c.tokens[d.index()].end(), d.token_ids().begin(),
                                 d.token_ids().end());
      if (d.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
        EXPECT_EQ(c.finish.count(d.index()), 0u) << "finish reason sent twice";
        c.finish[d.index()] = d.finish_reason();
      }
    }
    c.messages.push_back(resp);
  }
  c.status = reader->Finish();
  return c;
}

v1::GenerateRequest GreedyRequest(const std::string& prompt, int64_t max_tokens) {
  v1::GenerateRequest req;
  req.mutable_prompt()->set_text(prompt);
  req.mutable_sampling()->set_temperature(0);
  req.mutable_stopping()->set_max_tokens(max_tokens);
  return req;
}

v1::FinishReason Expected(FinishReason r) {
  switch (r) {
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kEos:
      return v1::FINISH_REASON_EOS;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

// grpc.health.v1.Health/Check through the generic stub, with the two one-field messages
// encoded by hand (HealthCheckRequest{string service = 1}, HealthCheckResponse{enum status = 1}).
// Returns the serving status (0 UNKNOWN, 1 SERVING, 2 NOT_SERVING) or -1 - grpc code on error.
int HealthCheck(int port, const std::string& service) {
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  std::string request;
  if (!service.empty()) {
    request.push_back(0x0A);
    request.push_back(static_cast<char>(service.size()));  // < 128 here
    request += service;
  }
  grpc::Slice slice(request);
  grpc::ByteBuffer req_buf(&slice, 1);
  grpc::ByteBuffer resp_buf;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 10);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &req_buf, &resp_buf,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status s = done.get_future().get();
  if (!s.ok()) return -1 - static_cast<int>(s.error_code());
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(resp_buf.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& sl : slices)
    bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  if (bytes.empty()) return 0;
  EXPECT_EQ(bytes.size(), 2u);
  EXPECT_EQ(bytes[0], 0x08);
  return bytes.size() == 2 ? bytes[1] : -100;
}

class GrpcServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto lm = LoadedModel::Load(kModelDir);
    ASSERT_TRUE(lm.ok()) << lm.status();
    model_ = std::shared_ptr<const LoadedModel>(std::move(*lm));
    EngineLoopOptions opt;
    opt.num_kv_pages = 512;
    loop_ = new EngineLoop(model_, opt);
    loop_->Start();
    auto open = StartGrpcServer(loop_, "127.0.0.1", 0, "", "llama");
    ASSERT_TRUE(open.ok()) << open.status();
    open_ = open->release();
    auto keyed = StartGrpcServer(loop_, "127.0.0.1", 0, kApiKey, "llama");
    ASSERT_TRUE(keyed.ok()) << keyed.status();
    keyed_ = keyed->release();
  }
  static void TearDownTestSuite() {
    delete keyed_;
    delete open_;
    delete loop_;
    model_.reset();
  }

  static std::shared_ptr<const LoadedModel> model_;
  static EngineLoop* loop_;
  static GrpcServer* open_;
  static GrpcServer* keyed_;
};
std::shared_ptr<const LoadedModel> GrpcServiceTest::model_;
EngineLoop* GrpcServiceTest::loop_ = nullptr;
GrpcServer* GrpcServiceTest::open_ = nullptr;
GrpcServer* GrpcServiceTest::keyed_ = nullptr;

TEST_F(GrpcServiceTest, ReportsBoundPort) {
  EXPECT_GT(open_->port(), 0);
  EXPECT_GT(keyed_->port(), 0);
  EXPECT_NE(open_->port(), keyed_->port());
}

TEST_F(GrpcServiceTest, GreedyStreamEqualsGenerate) {
  GenerateOptions opt;
  opt.sampling.temperature = 0;
  opt.max_tokens = 40;
  auto want = Generate(*model_, kPrompt, opt);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_FALSE(want->output_tokens.empty());

  auto stub = Connect(open_->port());
  Collected got = RunGenerate(*stub, GreedyRequest(kPrompt, 40));
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  EXPECT_EQ(got.text[0], want->text);
  EXPECT_EQ(got.tokens[0], want->output_tokens);
  ASSERT_EQ(got.finish.count(0), 1u);
  EXPECT_EQ(got.finish[0], Expected(want->finish));
  EXPECT_EQ(got.text.size(), 1u);  // only choice 0

  // Streamed: one request id throughout, usage only (and always) in the last message.
  ASSERT_FALSE(got.messages.empty());
  const std::string& id = got.messages[0].request_id();
  EXPECT_FALSE(id.empty());
  for (size_t i = 0; i < got.messages.size(); ++i) {
    EXPECT_EQ(got.messages[i].request_id(), id);
    EXPECT_EQ(got.messages[i].has_usage(), i + 1 == got.messages.size()) << "message " << i;
  }
  const v1::Usage& usage = got.messages.back().usage();
  EXPECT_EQ(usage.prompt_tokens(), static_cast<int64_t>(want->prompt_tokens.size()));
  EXPECT_EQ(usage.completion_tokens(), static_cast<int64_t>(want->output_tokens.size()));
}

// StreamingLLM through the engine loop (batched forward, pages kept) gives the tokens Generate
// gives (pages freed as they leave the window), and not the dense ones.
TEST_F(GrpcServiceTest, SlidingWindowWithSinksEqualsGenerate) {
  // Token ids spread over the vocabulary: the embedded model does not settle into a loop.
  std::vector<int32_t> prompt;
  for (int32_t i = 0; i < 30; ++i) prompt.push_back(3 + (i * 193) % 500);
  GenerateOptions opt;
  opt.sampling.temperature = 0;
  opt.max_tokens = 40;
  opt.ignore_eos = true;
  opt.attention = SlidingWindow(6, 2);
  auto want = Generate(*model_, prompt, opt);
  ASSERT_TRUE(want.ok()) << want.status();
  opt.attention = {};
  auto dense = Generate(*model_, prompt, opt);
  ASSERT_TRUE(dense.ok()) << dense.status();
  EXPECT_NE(want->output_tokens, dense->output_tokens);

  auto stub = Connect(open_->port());
  v1::GenerateRequest req;
  req.mutable_prompt()->mutable_token_ids()->mutable_ids()->Add(prompt.begin(), prompt.end());
  req.mutable_sampling()->set_temperature(0);
  req.mutable_stopping()->set_max_tokens(40);
  req.mutable_stopping()->set_ignore_eos(true);
  req.mutable_attention()->set_mode("sliding_window");
  req.mutable_attention()->set_window(6);
  req.mutable_attention()->set_sinks(2);
  Collected got = RunGenerate(*stub, req);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  EXPECT_EQ(got.tokens[0], want->output_tokens);
}

// A KV policy through gRPC: the same tokens as the engine gives it in-process (Generate).
TEST_F(GrpcServiceTest, KvPolicyEqualsGenerate) {
  std::vector<int32_t> prompt;
  for (int32_t i = 0; i < 60; ++i) prompt.push_back(3 + (i * 193) % 500);
  GenerateOptions opt;
  opt.sampling.temperature = 0;
  opt.max_tokens = 30;
  opt.ignore_eos = true;
  opt.kv_policy = *ParseKvPolicy({.policy = "h2o", .budget = 24}, "");
  auto want = Generate(*model_, prompt, opt);
  ASSERT_TRUE(want.ok()) << want.status();

  auto stub = Connect(open_->port());
  v1::GenerateRequest req;
  req.mutable_prompt()->mutable_token_ids()->mutable_ids()->Add(prompt.begin(), prompt.end());
  req.mutable_sampling()->set_temperature(0);
  req.mutable_stopping()->set_max_tokens(30);
  req.mutable_stopping()->set_ignore_eos(true);
  req.mutable_kv_policy()->set_policy("h2o");
  req.mutable_kv_policy()->set_budget(24);
  Collected got = RunGenerate(*stub, req);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  EXPECT_EQ(got.tokens[0], want->output_tokens);
}

TEST_F(GrpcServiceTest, TokenIdPromptAndSeveralChoices) {
  GenerateOptions opt;
  opt.sampling.temperature = 0;
  opt.max_tokens = 12;
  opt.ignore_eos = true;
  auto want = Generate(*model_, "The quick brown fox", opt);
  ASSERT_TRUE(want.ok()) << want.status();

  v1::GenerateRequest req;
  req.mutable_prompt()->mutable_token_ids()->mutable_ids()->Add(want->prompt_tokens.begin(),
                                                                want->prompt_tokens.end());
  req.mutable_sampling()->set_temperature(0);
  req.mutable_stopping()->set_max_tokens(12);
  req.mutable_stopping()->set_ignore_eos(true);
  req.mutable_output()->set_n(2);
  auto stub = Connect(open_->port());
  Collected got = RunGenerate(*stub, req);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  ASSERT_EQ(got.tokens.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(got.tokens[i], want->output_tokens) << "choice " << i;
    EXPECT_EQ(got.text[i], want->text) << "choice " << i;
    EXPECT_EQ(got.finish[i], v1::FINISH_REASON_LENGTH) << "choice " << i;
  }
  EXPECT_EQ(got.messages.back().usage().completion_tokens(), 24);
}

TEST_F(GrpcServiceTest, LogprobsOnePerTokenWithTopK) {
  v1::GenerateRequest req = GreedyRequest(kPrompt, 6);
  req.mutable_stopping()->set_ignore_eos(true);
  req.mutable_output()->set_logprobs(3);
  auto stub = Connect(open_->port());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse resp;
  int num_tokens = 0;
  while (reader->Read(&resp)) {
    for (const v1::ChoiceDelta& d : resp.choices()) {
      ASSERT_EQ(d.logprobs_size(), d.token_ids_size());
      for (int i = 0; i < d.token_ids_size(); ++i) {
        const v1::TokenLogprobs& lp = d.logprobs(i);
        EXPECT_EQ(lp.chosen().token_id(), d.token_ids(i));
        EXPECT_LE(lp.chosen().logprob(), 0.0f);
        ASSERT_EQ(lp.top_size(), 3);
        // Greedy: the chosen token is the most likely one.
        EXPECT_EQ(lp.top(0).token_id(), d.token_ids(i));
        EXPECT_GE(lp.top(0).logprob(), lp.top(1).logprob());
        ++num_tokens;
      }
    }
  }
  grpc::Status s = reader->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(num_tokens, 6);
}

// Prompt text beyond --max-prompt-bytes is refused before tokenizing, naming the field; with a
// frontend pool the tokenization runs there and gives the same ids.
TEST_F(GrpcServiceTest, PromptBytesAreCappedAndTokenizingRunsOnTheFrontendPool) {
  FrontendPool pool(2);
  auto server = StartGrpcServer(loop_, "127.0.0.1", 0,
                                GrpcServerOptions{.model_name = "llama",
                                                  .max_prompt_bytes = 64,
                                                  .frontend = &pool});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = Connect((*server)->port());
  v1::TokenizeRequest treq;
  treq.set_text(std::string(65, 'a'));
  v1::TokenizeResponse tresp;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub->Tokenize(&ctx, treq, &tresp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message().rfind("text is 65 bytes", 0), 0u) << s.error_message();
  }
  treq.set_text("Hello world");
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub->Tokenize(&ctx, treq, &tresp).ok());
    std::vector<int32_t> ids(tresp.token_ids().begin(), tresp.token_ids().end());
    EXPECT_EQ(ids, model_->tokenizer->Encode("Hello world"));
  }
  v1::GenerateRequest req;
  req.mutable_prompt()->set_text(std::string(65, 'b'));
  req.mutable_stopping()->set_max_tokens(1);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
  }
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("prompt.text", 0), 0u) << s.error_message();
  (*server)->Shutdown();
  pool.Stop();
}

TEST_F(GrpcServiceTest, TokenizeDetokenizeRoundTrip) {
  auto stub = Connect(open_->port());
  const std::string text = "Hello world, the cat sat.";
  v1::TokenizeRequest treq;
  treq.set_text(text);
  v1::TokenizeResponse tresp;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub->Tokenize(&ctx, treq, &tresp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  std::vector<int32_t> ids(tresp.token_ids().begin(), tresp.token_ids().end());
  EXPECT_EQ(ids, model_->tokenizer->Encode(text));
  ASSERT_TRUE(model_->tokenizer->add_bos());
  EXPECT_EQ(ids.front(), model_->tokenizer->bos_id());

  treq.set_add_special_tokens(false);
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::TokenizeResponse plain;
    ASSERT_TRUE(stub->Tokenize(&ctx, treq, &plain).ok());
    EXPECT_EQ(std::vector<int32_t>(plain.token_ids().begin(), plain.token_ids().end()),
              model_->tokenizer->Encode(text, false));
    EXPECT_EQ(plain.token_ids_size() + 1, tresp.token_ids_size());
  }

  v1::DetokenizeRequest dreq;
  *dreq.mutable_token_ids() = tresp.token_ids();
  v1::DetokenizeResponse dresp;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub->Detokenize(&ctx, dreq, &dresp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(dresp.text(), text);

  dreq.add_token_ids(static_cast<int32_t>(model_->config.vocab_size));
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  grpc::Status s = stub->Detokenize(&ctx, dreq, &dresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("token_ids[" + std::to_string(tresp.token_ids_size()) + "]"),
            std::string::npos)
      << s.error_message();
}

TEST_F(GrpcServiceTest, ListModels) {
  auto stub = Connect(open_->port());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::ListModelsResponse resp;
  grpc::Status s = stub->ListModels(&ctx, v1::ListModelsRequest(), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.models_size(), 1);
  const v1::ModelInfo& m = resp.models(0);
  EXPECT_EQ(m.id(), "llama");
  EXPECT_EQ(m.max_context_length(), 512);
  EXPECT_EQ(m.vocab_size(), model_->config.vocab_size);
  EXPECT_EQ(m.architecture(), "LlamaForCausalLM");
  ASSERT_EQ(m.attention_modes_size(), 3);  // the CPU backend runs every mode
  EXPECT_EQ(m.attention_modes(0), "dense");
  EXPECT_EQ(m.attention_modes(1), "sliding_window");
  EXPECT_EQ(m.attention_modes(2), "hip");
}

TEST_F(GrpcServiceTest, BadRequestsNameTheField) {
  struct Case {
    const char* name;
    std::function<void(v1::GenerateRequest*)> edit;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"no prompt", [](v1::GenerateRequest* r) { r->clear_prompt(); }, "prompt"},
      {"empty text", [](v1::GenerateRequest* r) { r->mutable_prompt()->set_text(""); },
       "prompt.text"},
      {"token id out of range",
       [](v1::GenerateRequest* r) {
         r->mutable_prompt()->mutable_token_ids()->add_ids(1);
         r->mutable_prompt()->mutable_token_ids()->add_ids(-5);
       },
       "prompt.token_ids[1]"},
      {"temperature", [](v1::GenerateRequest* r) { r->mutable_sampling()->set_temperature(-1); },
       "sampling.temperature"},
      {"top_p", [](v1::GenerateRequest* r) { r->mutable_sampling()->set_top_p(1.5); },
       "sampling.top_p"},
      {"repetition_penalty",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_repetition_penalty(0); },
       "sampling.repetition_penalty"},
      {"max_tokens zero", [](v1::GenerateRequest* r) { r->mutable_stopping()->set_max_tokens(0); },
       "stopping.max_tokens"},
      {"beyond context",
       [](v1::GenerateRequest* r) { r->mutable_stopping()->set_max_tokens(100000); },
       "stopping.max_tokens"},
      {"max_tokens overflowing",
       [](v1::GenerateRequest* r) {
         r->mutable_stopping()->set_max_tokens(std::numeric_limits<int64_t>::max());
       },
       "stopping.max_tokens"},
      {"window overflowing",
       [](v1::GenerateRequest* r) {
         r->mutable_attention()->set_mode("sliding_window");
         r->mutable_attention()->set_window(std::numeric_limits<int64_t>::max());
         r->mutable_attention()->set_sinks(1);
       },
       "attention.window"},
      {"empty stop", [](v1::GenerateRequest* r) { r->mutable_stopping()->add_stop(""); },
       "stopping.stop[0]"},
      {"n", [](v1::GenerateRequest* r) { r->mutable_output()->set_n(0); }, "output.n"},
      // The limits table shared with the OpenAI API (engine/sampling/request_limits.h).
      {"temperature above 2",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_temperature(1e30); },
       "sampling.temperature"},
      {"repetition_penalty above 100",
       [](v1::GenerateRequest* r) { r->mutable_sampling()->set_repetition_penalty(101); },
       "sampling.repetition_penalty"},
      {"n above 128", [](v1::GenerateRequest* r) { r->mutable_output()->set_n(129); }, "output.n"},
      {"17 stop strings",
       [](v1::GenerateRequest* r) {
         for (int i = 0; i < 17; ++i) r->mutable_stopping()->add_stop("x" + std::to_string(i));
       },
       "stopping.stop"},
      {"logprobs", [](v1::GenerateRequest* r) { r->mutable_output()->set_logprobs(21); },
       "output.logprobs"},
      {"attention mode", [](v1::GenerateRequest* r) { r->mutable_attention()->set_mode("lizard"); },
       "attention.mode"},
      {"unknown attention mode",
       [](v1::GenerateRequest* r) { r->mutable_attention()->set_mode("nope"); }, "attention.mode"},
      {"unknown kv policy",
       [](v1::GenerateRequest* r) { r->mutable_kv_policy()->set_policy("fifo"); },
       "kv_policy.policy"},
      {"kv policy without budget",
       [](v1::GenerateRequest* r) { r->mutable_kv_policy()->set_policy("snapkv"); },
       "kv_policy.budget"},
      {"kv policy parameter it does not take",
       [](v1::GenerateRequest* r) {
         r->mutable_kv_policy()->set_policy("h2o");
         r->mutable_kv_policy()->set_budget(64);
         r->mutable_kv_policy()->set_kernel(3);
       },
       "kv_policy.kernel"},
      {"sliding_window without window",
       [](v1::GenerateRequest* r) { r->mutable_attention()->set_mode("sliding_window"); },
       "attention.window"},
      {"window zero",
       [](v1::GenerateRequest* r) {
         r->mutable_attention()->set_mode("sliding_window");
         r->mutable_attention()->set_window(0);
       },
       "attention.window"},
      {"sinks beyond window",
       [](v1::GenerateRequest* r) {
         r->mutable_attention()->set_mode("sliding_window");
         r->mutable_attention()->set_window(4);
         r->mutable_attention()->set_sinks(5);
       },
       "attention.sinks"},
      {"negative sinks",
       [](v1::GenerateRequest* r) {
         r->mutable_attention()->set_mode("sliding_window");
         r->mutable_attention()->set_window(4);
         r->mutable_attention()->set_sinks(-1);
       },
       "attention.sinks"},
      {"window under dense", [](v1::GenerateRequest* r) { r->mutable_attention()->set_window(64); },
       "attention.window"},
  };
  auto stub = Connect(open_->port());
  for (const Case& c : cases) {
    v1::GenerateRequest req = GreedyRequest(kPrompt, 8);
    c.edit(&req);
    Collected got = RunGenerate(*stub, req);
    EXPECT_EQ(got.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_NE(got.status.error_message().find(c.field), std::string::npos)
        << c.name << ": " << got.status.error_message();
    EXPECT_TRUE(got.messages.empty()) << c.name;
  }

  v1::GenerateRequest req = GreedyRequest(kPrompt, 8);
  req.set_model("no-such-model");
  Collected got = RunGenerate(*stub, req);
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(got.status.error_message().find("no-such-model"), std::string::npos);

  // A good request still works afterwards, naming the model explicitly.
  req.set_model("llama");
  got = RunGenerate(*stub, req);
  EXPECT_TRUE(got.status.ok()) << got.status.error_message();
  EXPECT_FALSE(got.tokens[0].empty());
}

TEST_F(GrpcServiceTest, ApiKeyRequiredWhenSet) {
  auto stub = Connect(keyed_->port());
  for (const std::string& auth : {std::string(), std::string("Bearer wrong"), std::string(kApiKey),
                                  std::string("Bearer ") + kApiKey + "x"}) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    if (!auth.empty()) ctx.AddMetadata("authorization", auth);
    v1::ListModelsResponse resp;
    grpc::Status s = stub->ListModels(&ctx, v1::ListModelsRequest(), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << "authorization: " << auth;
  }
  Collected bad = RunGenerate(*stub, GreedyRequest(kPrompt, 4), "wrong");
  EXPECT_EQ(bad.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(bad.messages.empty());

  Collected good = RunGenerate(*stub, GreedyRequest(kPrompt, 4), kApiKey);
  EXPECT_TRUE(good.status.ok()) << good.status.error_message();
  EXPECT_FALSE(good.tokens[0].empty());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  ctx.AddMetadata("authorization", std::string("Bearer ") + kApiKey);
  v1::TokenizeRequest treq;
  treq.set_text("hi");
  v1::TokenizeResponse tresp;
  EXPECT_TRUE(stub->Tokenize(&ctx, treq, &tresp).ok());

  // The scheme in any case and spacing, as over HTTP.
  // (gRPC metadata values are printable ASCII: no tabs.)
  for (const std::string& auth :
       {std::string("bearer ") + kApiKey, std::string("BEARER  ") + kApiKey + " "}) {
    grpc::ClientContext c;
    SetDeadline(&c);
    c.AddMetadata("authorization", auth);
    v1::ListModelsResponse resp;
    EXPECT_TRUE(stub->ListModels(&c, v1::ListModelsRequest(), &resp).ok()) << auth;
  }

  // Health stays open for probes.
  EXPECT_EQ(HealthCheck(keyed_->port(), ""), 1);
}

// Health follows the engine: NOT_SERVING while it has work and makes no progress (a step that
// does not return), SERVING again once it moves.
TEST(GrpcHealthTest, NotServingWhileTheEngineStalls) {
  auto lm = LoadedModel::Load(kModelDir);
  ASSERT_TRUE(lm.ok()) << lm.status();
  std::shared_ptr<const LoadedModel> model(std::move(*lm));
  auto runner = std::make_shared<test::GatedRunner>(64, 16,
                                                    static_cast<int32_t>(model->config.vocab_size));
  EngineLoopOptions opt;
  opt.runner = runner;
  opt.num_kv_pages = 64;
  EngineLoop loop(model, opt);
  loop.Start();
  auto server = StartGrpcServer(&loop, "127.0.0.1", 0, "", "llama", /*max_stall_seconds=*/0.2);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(HealthCheck((*server)->port(), ""), 1);
  GenerationRequest r;
  r.request_id = "stuck";
  r.prompt_tokens = {5, 6, 7};
  r.max_tokens = 2;
  auto stream = loop.Submit(r);
  ASSERT_TRUE(stream.ok()) << stream.status();
  runner->WaitEntered();
  int status = 1;
  for (int i = 0; i < 100 && status == 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = HealthCheck((*server)->port(), "");
  }
  EXPECT_EQ(status, 2);  // NOT_SERVING
  EXPECT_EQ(HealthCheck((*server)->port(), "longview.v1.Generation"), 2);
  runner->Open();
  RequestOutput out;
  while ((*stream)->Next(&out) && !out.finished) {
  }
  for (int i = 0; i < 100 && status != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = HealthCheck((*server)->port(), "");
  }
  EXPECT_EQ(status, 1);
  (*server)->Shutdown();
  loop.Stop();
}

TEST_F(GrpcServiceTest, HealthServing) {
  EXPECT_EQ(HealthCheck(open_->port(), ""), 1);
  EXPECT_EQ(HealthCheck(open_->port(), "longview.v1.Generation"), 1);
  EXPECT_EQ(HealthCheck(open_->port(), "no.such.Service"),
            -1 - static_cast<int>(grpc::StatusCode::NOT_FOUND));
}

// A long request: 16 choices to the end of the context, so it cannot finish before the client
// acts on its first message.
v1::GenerateRequest LongRequest() {
  v1::GenerateRequest req = GreedyRequest(kPrompt, 500);
  req.mutable_stopping()->set_ignore_eos(true);
  req.mutable_output()->set_n(16);
  return req;
}

// At most half of LongRequest's tokens: a request that was really cancelled stops far sooner.
constexpr int64_t kMaxTokensAfterCancel = 16 * 500 / 2;

bool WaitForIdleEngine(EngineLoop& loop, std::chrono::seconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    EngineMetrics m = loop.Snapshot();
    if (m.num_requests_running == 0 && m.num_requests_waiting == 0 &&
        m.num_free_kv_pages == m.num_kv_pages) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST_F(GrpcServiceTest, ClientCancelCancelsTheRequest) {
  auto stub = Connect(open_->port());
  const int64_t before = open_->num_client_cancellations();
  const int64_t tokens_before = loop_->Snapshot().generation_tokens_total;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = stub->Generate(&ctx, LongRequest());
  v1::GenerateResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  ctx.TryCancel();
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (open_->num_client_cancellations() == before && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(open_->num_client_cancellations(), before + 1);
  EXPECT_TRUE(WaitForIdleEngine(*loop_, std::chrono::seconds(10)))
      << "the cancelled request still holds the engine";
  EXPECT_LT(loop_->Snapshot().generation_tokens_total - tokens_before, kMaxTokensAfterCancel)
      << "the engine kept generating after the client cancelled";
}

TEST_F(GrpcServiceTest, ShutdownEndsOpenStreamsWithUnavailable) {
  auto started = StartGrpcServer(loop_, "127.0.0.1", 0, "", "llama");
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<GrpcServer> server = *std::move(started);
  auto stub = Connect(server->port());
  const int64_t tokens_before = loop_->Snapshot().generation_tokens_total;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = stub->Generate(&ctx, LongRequest());
  v1::GenerateResponse resp;
  ASSERT_TRUE(reader->Read(&resp));

  const auto t0 = std::chrono::steady_clock::now();
  server->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(WaitForIdleEngine(*loop_, std::chrono::seconds(10)));
  EXPECT_LT(loop_->Snapshot().generation_tokens_total - tokens_before, kMaxTokensAfterCancel)
      << "the engine kept generating after shutdown";
  server->Shutdown();  // idempotent
}

TEST_F(GrpcServiceTest, StartRejectsBadArgumentsAndTakenPorts) {
  EXPECT_EQ(StartGrpcServer(nullptr, "127.0.0.1", 0, "", "m").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(StartGrpcServer(loop_, "127.0.0.1", 70000, "", "m").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto taken = StartGrpcServer(loop_, "127.0.0.1", open_->port(), "", "m");
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(taken.status().message().find(std::to_string(open_->port())), std::string::npos);
}

}  // namespace
}  // namespace longview
