// The OpenAI HTTP API and the gRPC API served by the CUDA backend (issues 4 and 6): a real
// HttpServer and gRPC server in this process over loopback, an EngineLoop over CudaModelRunner on
// the embedded model, and clients speaking HTTP/1.1 (raw socket, JSON bodies) and gRPC (the
// generated C++ stub). Checks: dense and sliding-window (+ sinks) requests through both APIs
// agree with the CPU engine's greedy output (equal, or equal up to a near-tie); a StreamingLLM
// request runs past the model's context; bad attention fields are refused naming the field.
//
// Not registered with ctest (CI has no GPU): run build-cuda/tests/gpu_api_tests on a GPU machine
// (LONGVIEW_BUNDLE_TARGETS=gpu_api_tests deploy/bundle.sh, then run_gpu.sh api).
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/cuda/cuda_model_runner.h"
#include "gtest/gtest.h"
#include "tests/support/attention.h"
#include "nlohmann/json.hpp"
#include "proto/longview.grpc.pb.h"
#include "scheduler/engine_loop.h"
#include "engine/text/chat_template.h"
#include "server/grpc_service.h"
#include "server/http_server.h"
#include "server/openai_service.h"
#include "server/request_pump.h"
#include "tests/gpu/model/greedy_compare.h"

namespace longview {
namespace {

namespace v1 = ::longview::v1;
const std::string kModel = [] {
  const char* v = std::getenv("LV_MODELS_DIR");
  return std::string(v != nullptr ? v : LONGVIEW_MODELS_DIR) + "/longview-tiny";
}();

// One HTTP/1.1 request on a fresh connection; returns (status, body). Connection: close.
std::pair<int, std::string> HttpPost(int port, const std::string& path, const std::string& body) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return {-1, "connect failed"};
  }
  timeval tv{120, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                          "Content-Type: application/json\r\nConnection: close\r\n" +
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return {-1, "write failed"};
  }
  std::string resp;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) resp.append(buf, n);
  close(fd);
  const size_t sp = resp.find(' ');
  const size_t hdr_end = resp.find("\r\n\r\n");
  if (sp == std::string::npos || hdr_end == std::string::npos) return {-1, resp};
  std::string payload = resp.substr(hdr_end + 4);
  if (resp.find("Transfer-Encoding: chunked") != std::string::npos &&
      resp.find("Transfer-Encoding: chunked") < hdr_end) {
    std::string joined;  // de-chunk
    for (size_t p = 0;;) {
      const size_t eol = payload.find("\r\n", p);
      if (eol == std::string::npos) break;
      const size_t len = std::stoul(payload.substr(p, eol - p), nullptr, 16);
      if (len == 0) break;
      joined += payload.substr(eol + 2, len);
      p = eol + 2 + len + 2;
    }
    payload = joined;
  }
  return {std::stoi(resp.substr(sp + 1, 3)), payload};
}

struct Servers {
  std::shared_ptr<const LoadedModel> lm;
  std::unique_ptr<EngineLoop> loop;
  std::unique_ptr<RequestPump> pump;
  std::unique_ptr<OpenAiService> service;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<GrpcServer> grpc;
  std::unique_ptr<v1::Generation::Stub> stub;
  ~Servers() {
    if (grpc) grpc->Shutdown();
    if (http) http->Stop();
    if (pump) pump->Stop();
    if (loop) loop->Stop();
  }
};

std::unique_ptr<Servers> Start() {
  auto s = std::make_unique<Servers>();
  auto lm = LoadedModel::Load(kModel);
  EXPECT_TRUE(lm.ok()) << lm.status();
  if (!lm.ok()) return nullptr;
  s->lm = std::shared_ptr<const LoadedModel>(std::move(*lm));
  CudaRunnerOptions ro;
  ro.fp16 = true;
  ro.num_pages = 1024;
  ro.max_num_tokens = 1024;
  ro.max_num_seqs = 16;
  auto runner = CudaModelRunner::Create(s->lm->config, s->lm->weights.get(), ro);
  EXPECT_TRUE(runner.ok()) << runner.status();
  if (!runner.ok()) return nullptr;
  EngineLoopOptions eo;
  eo.num_kv_pages = (*runner)->num_pages();
  eo.max_num_seqs = 16;
  eo.max_num_batched_tokens = 1024;
  eo.runner = std::shared_ptr<ModelRunner>(std::move(*runner));
  s->loop = std::make_unique<EngineLoop>(s->lm, eo);
  s->loop->Start();
  s->pump = std::make_unique<RequestPump>(2);
  auto tmpl = LoadChatTemplate(kModel, "");
  EXPECT_TRUE(tmpl.ok()) << tmpl.status();
  s->service = std::make_unique<OpenAiService>(
      s->loop.get(), s->pump.get(),
      OpenAiServiceOptions{.served_model_name = "longview-tiny", .chat_template = *tmpl});
  HttpServerOptions ho;
  ho.port = 0;
  OpenAiService* svc = s->service.get();
  auto http = HttpServer::Start(ho, [svc](HttpRequest r, std::shared_ptr<HttpResponder> w) {
    svc->Handle(std::move(r), std::move(w));
  });
  EXPECT_TRUE(http.ok()) << http.status();
  if (!http.ok()) return nullptr;
  s->http = std::move(*http);
  auto grpc = StartGrpcServer(s->loop.get(), "127.0.0.1", 0, "", "longview-tiny");
  EXPECT_TRUE(grpc.ok()) << grpc.status();
  if (!grpc.ok()) return nullptr;
  s->grpc = std::move(*grpc);
  s->stub = v1::Generation::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(s->grpc->port()), grpc::InsecureChannelCredentials()));
  return s;
}

struct GrpcResult {
  grpc::Status status;
  std::vector<int32_t> tokens;
  std::string text;
};

GrpcResult GrpcGenerate(v1::Generation::Stub& stub, const v1::GenerateRequest& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  GrpcResult r;
  auto reader = stub.Generate(&ctx, req);
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    for (const v1::ChoiceDelta& d : resp.choices()) {
      r.text += d.text();
      r.tokens.insert(r.tokens.end(), d.token_ids().begin(), d.token_ids().end());
    }
  }
  r.status = reader->Finish();
  return r;
}

std::string LongPrompt() {
  std::string p = "The river ran past the mill. ";
  for (int i = 0; i < 40; ++i) p += "The miller counted sacks number " + std::to_string(i) + ". ";
  return p + "At the end of the day the miller said";
}

struct Mode {
  const char* name;
  int64_t window = 0;  // 0: dense
  int64_t sinks = 0;
};

TEST(CudaApiGpu, BothApisServeDenseAndSlidingWindowLikeTheCpuEngine) {
  auto s = Start();
  ASSERT_NE(s, nullptr);
  const std::string prompt = LongPrompt();
  const std::vector<int32_t> prompt_ids = s->lm->tokenizer->Encode(prompt, true);
  ASSERT_GT(prompt_ids.size(), 200u);  // longer than the windows below
  for (const Mode& mode : {Mode{"dense"}, Mode{"window", 64}, Mode{"sinks", 64, 4}}) {
    GenerateOptions go;
    go.max_tokens = 32;
    go.ignore_eos = true;
    go.sampling.temperature = 0;
    go.attention = mode.window > 0 ? SlidingWindow(mode.window, mode.sinks) : Attention();
    auto cpu = Generate(*s->lm, prompt, go);
    ASSERT_TRUE(cpu.ok()) << cpu.status();

    v1::GenerateRequest req;
    req.mutable_prompt()->set_text(prompt);
    req.mutable_sampling()->set_temperature(0);
    req.mutable_stopping()->set_max_tokens(32);
    req.mutable_stopping()->set_ignore_eos(true);
    nlohmann::json body = {{"model", "longview-tiny"}, {"prompt", prompt}, {"max_tokens", 32},
                           {"temperature", 0}, {"ignore_eos", true}};
    if (mode.window > 0) {
      req.mutable_attention()->set_mode("sliding_window");
      req.mutable_attention()->set_window(mode.window);
      req.mutable_attention()->set_sinks(mode.sinks);
      body["longview"] = {{"attention",
                           {{"mode", "sliding_window"},
                            {"window", mode.window},
                            {"sinks", mode.sinks}}}};
    }
    const GrpcResult g = GrpcGenerate(*s->stub, req);
    ASSERT_TRUE(g.status.ok()) << g.status.error_message();
    EXPECT_TRUE(GreedyAgrees(*s->lm, prompt_ids, g.tokens, cpu->output_tokens, 1e-2,
                             std::string("grpc ") + mode.name));
    const auto [status, resp] = HttpPost(s->http->port(), "/v1/completions", body.dump());
    ASSERT_EQ(status, 200) << resp;
    const nlohmann::json j = nlohmann::json::parse(resp);
    const std::string http_text = j["choices"][0]["text"];
    EXPECT_EQ(j["usage"]["completion_tokens"], 32);
    // Same backend, same greedy request: the two APIs give the same text.
    EXPECT_EQ(http_text, g.text) << mode.name;
    std::printf("[api] %s: grpc %zu tokens, http %zu chars, equal text %s %s\n", mode.name,
                g.tokens.size(), http_text.size(), http_text == g.text ? "yes" : "no",
                http_text == g.text && g.tokens.size() == 32 ? "PASS" : "FAIL");
  }
}

TEST(CudaApiGpu, StreamingPastTheContextAndFieldErrors) {
  auto s = Start();
  ASSERT_NE(s, nullptr);
  const int64_t context = s->lm->config.max_position_embeddings;
  nlohmann::json body = {
      {"model", "longview-tiny"}, {"prompt", "Once upon a time"}, {"max_tokens", context + 64},
      {"temperature", 0}, {"ignore_eos", true},
      {"longview", {{"attention", {{"mode", "sliding_window"}, {"window", 256}, {"sinks", 4}}}}}};
  const auto [status, resp] = HttpPost(s->http->port(), "/v1/completions", body.dump());
  ASSERT_EQ(status, 200) << resp.substr(0, 300);
  const nlohmann::json j = nlohmann::json::parse(resp);
  EXPECT_EQ(j["usage"]["completion_tokens"], context + 64);
  std::printf("[api] StreamingLLM past the context: %lld tokens (context %lld) %s\n",
              static_cast<long long>(j["usage"]["completion_tokens"].get<int64_t>()),
              static_cast<long long>(context),
              j["usage"]["completion_tokens"] == context + 64 ? "PASS" : "FAIL");

  body["longview"]["attention"] = {{"mode", "sliding_window"}, {"window", 4}, {"sinks", 5}};
  body["max_tokens"] = 4;
  const auto [bad_status, bad] = HttpPost(s->http->port(), "/v1/completions", body.dump());
  EXPECT_EQ(bad_status, 400);
  EXPECT_NE(bad.find("longview.attention.sinks"), std::string::npos) << bad;
  v1::GenerateRequest req;
  req.mutable_prompt()->set_text("hi");
  req.mutable_attention()->set_mode("sliding_window");
  const GrpcResult g = GrpcGenerate(*s->stub, req);
  EXPECT_EQ(g.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(g.status.error_message().find("attention.window"), std::string::npos);
  std::printf("[api] bad fields: http %d, grpc %d %s\n", bad_status,
              static_cast<int>(g.status.error_code()),
              bad_status == 400 && g.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT
                  ? "PASS"
                  : "FAIL");
}

}  // namespace
}  // namespace longview
