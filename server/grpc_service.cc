#include "server/grpc_service.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/sampling/request_limits.h"
#include "absl/strings/str_cat.h"
#include "scheduler/generator.h"
#include "proto/longview.grpc.pb.h"
#include "proto/longview.pb.h"
#include "scheduler/engine_loop.h"
#include "server/api_key.h"
#include "server/grpc_interceptors.h"
#include "server/grpc_request.h"
#include "server/limits.h"

namespace longview {
namespace {

namespace v1 = ::longview::v1;

constexpr char kServiceName[] = "longview.v1.Generation";
// How long a Generate handler waits for engine output before checking for cancellation.
constexpr std::chrono::milliseconds kPollSlice{50};
// gRPC's thread pool bound: beyond it new calls get RESOURCE_EXHAUSTED from gRPC itself.
constexpr int kMaxServerThreads = 512;
// How long Shutdown lets handlers finish before gRPC cancels them.
constexpr std::chrono::seconds kShutdownGrace{5};

grpc::StatusCode ToGrpcCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return grpc::StatusCode::OK;
    case absl::StatusCode::kCancelled:
      return grpc::StatusCode::CANCELLED;
    case absl::StatusCode::kUnknown:
      return grpc::StatusCode::UNKNOWN;
    case absl::StatusCode::kInvalidArgument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case absl::StatusCode::kDeadlineExceeded:
      return grpc::StatusCode::DEADLINE_EXCEEDED;
    case absl::StatusCode::kNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case absl::StatusCode::kAlreadyExists:
      return grpc::StatusCode::ALREADY_EXISTS;
    case absl::StatusCode::kPermissionDenied:
      return grpc::StatusCode::PERMISSION_DENIED;
    case absl::StatusCode::kResourceExhausted:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case absl::StatusCode::kFailedPrecondition:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case absl::StatusCode::kAborted:
      return grpc::StatusCode::ABORTED;
    case absl::StatusCode::kOutOfRange:
      return grpc::StatusCode::OUT_OF_RANGE;
    case absl::StatusCode::kUnimplemented:
      return grpc::StatusCode::UNIMPLEMENTED;
    case absl::StatusCode::kInternal:
      return grpc::StatusCode::INTERNAL;
    case absl::StatusCode::kUnavailable:
      return grpc::StatusCode::UNAVAILABLE;
    case absl::StatusCode::kDataLoss:
      return grpc::StatusCode::DATA_LOSS;
    case absl::StatusCode::kUnauthenticated:
      return grpc::StatusCode::UNAUTHENTICATED;
    default:
      return grpc::StatusCode::UNKNOWN;
  }
}

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(ToGrpcCode(s.code()), std::string(s.message()));
}

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kEos:
      return v1::FINISH_REASON_EOS;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void AppendDelta(const SequenceDelta& d, v1::GenerateResponse* resp) {
  v1::ChoiceDelta* c = resp->add_choices();
  c->set_index(d.index);
  c->set_text(d.text);
  c->mutable_token_ids()->Add(d.token_ids.begin(), d.token_ids.end());
  for (size_t i = 0; i < d.logprobs.size(); ++i) {
    v1::TokenLogprobs* lp = c->add_logprobs();
    lp->mutable_chosen()->set_token_id(d.logprobs[i].token);
    lp->mutable_chosen()->set_logprob(d.logprobs[i].logprob);
    if (i < d.top_logprobs.size()) {
      for (const TokenLogprob& t : d.top_logprobs[i]) {
        v1::Logprob* top = lp->add_top();
        top->set_token_id(t.token);
        top->set_logprob(t.logprob);
      }
    }
  }
  if (d.finished) c->set_finish_reason(ToProto(d.finish_reason));
}

}  // namespace

class GenerationService final : public v1::Generation::Service {
 public:
  GenerationService(EngineLoop* loop, const GrpcServerOptions& o, int64_t max_prompt_bytes)
      : loop_(loop),
        api_keys_(o.api_keys),
        model_name_(o.model_name),
        frontend_(o.frontend),
        max_prompt_bytes_(max_prompt_bytes) {}

  void BeginShutdown() { shutting_down_.store(true); }
  void BeginDrain() { draining_.store(true); }
  int64_t num_client_cancellations() const { return num_client_cancellations_.load(); }

  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    if (grpc::Status s = Authorize(*ctx); !s.ok()) return s;
    if (grpc::Status s = CheckModel(req->model()); !s.ok()) return s;
    if (draining_.load()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "server is shutting down: no new requests (open ones finish)");
    }
    absl::StatusOr<GenerationRequest> request =
        ToGenerationRequest(*req, loop_->model(), frontend_, max_prompt_bytes_);
    if (!request.ok()) return ToGrpcStatus(request.status());
    request->request_id = absl::StrCat("grpc-", next_request_id_.fetch_add(1));
    const std::string request_id = request->request_id;
    absl::StatusOr<std::shared_ptr<RequestStream>> submitted = loop_->Submit(*std::move(request));
    if (!submitted.ok()) return ToGrpcStatus(submitted.status());
    std::shared_ptr<RequestStream> stream = *std::move(submitted);

    // Every exit before the engine finishes the request cancels it, so its blocks are freed.
    bool finished = false;
    struct CancelUnlessFinished {
      RequestStream* stream;
      const bool* finished;
      ~CancelUnlessFinished() {
        if (!*finished) stream->Cancel();
      }
    } guard{stream.get(), &finished};

    while (true) {
      if (ctx->IsCancelled()) {
        num_client_cancellations_.fetch_add(1);
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
      }
      if (shutting_down_.load()) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down");
      }
      RequestOutput out;
      bool timed_out = false;
      if (!stream->NextFor(&out, kPollSlice, &timed_out)) {
        if (timed_out) continue;
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "the engine closed the request without finishing it");
      }
      v1::GenerateResponse resp;
      resp.set_request_id(request_id);
      for (const SequenceDelta& d : out.deltas) AppendDelta(d, &resp);
      const bool last = out.finished || !out.status.ok();
      if (last && out.status.ok()) {
        v1::Usage* usage = resp.mutable_usage();
        usage->set_prompt_tokens(out.prompt_tokens);
        usage->set_completion_tokens(out.completion_tokens);
        usage->set_cached_prompt_tokens(out.cached_prompt_tokens);
      }
      if ((resp.choices_size() > 0 || resp.has_usage()) && !writer->Write(resp)) {
        num_client_cancellations_.fetch_add(1);
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
      if (!out.status.ok()) return ToGrpcStatus(out.status);
      if (out.finished) {
        finished = true;
        return grpc::Status::OK;
      }
    }
  }

  grpc::Status Tokenize(grpc::ServerContext* ctx, const v1::TokenizeRequest* req,
                        v1::TokenizeResponse* resp) override {
    if (grpc::Status s = Authorize(*ctx); !s.ok()) return s;
    if (grpc::Status s = CheckModel(req->model()); !s.ok()) return s;
    const bool add_special = req->has_add_special_tokens() ? req->add_special_tokens() : true;
    if (absl::Status s = CheckPromptBytes(req->text(), "text", max_prompt_bytes_); !s.ok()) {
      return ToGrpcStatus(s);
    }
    std::vector<int32_t> ids =
        EncodeOnPool(frontend_, *loop_->model().tokenizer, req->text(), add_special);
    resp->mutable_token_ids()->Add(ids.begin(), ids.end());
    return grpc::Status::OK;
  }

  grpc::Status Detokenize(grpc::ServerContext* ctx, const v1::DetokenizeRequest* req,
                          v1::DetokenizeResponse* resp) override {
    if (grpc::Status s = Authorize(*ctx); !s.ok()) return s;
    if (grpc::Status s = CheckModel(req->model()); !s.ok()) return s;
    const LoadedModel& lm = loop_->model();
    if (absl::Status s = CheckTokenIds(req->token_ids(), lm.config.vocab_size, "token_ids");
        !s.ok()) {
      return ToGrpcStatus(s);
    }
    resp->set_text(lm.tokenizer->Decode({req->token_ids().begin(), req->token_ids().end()}));
    return grpc::Status::OK;
  }

  grpc::Status ListModels(grpc::ServerContext* ctx, const v1::ListModelsRequest* /*req*/,
                          v1::ListModelsResponse* resp) override {
    if (grpc::Status s = Authorize(*ctx); !s.ok()) return s;
    const ModelConfig& cfg = loop_->model().config;
    v1::ModelInfo* m = resp->add_models();
    m->set_id(model_name_);
    m->set_max_context_length(cfg.max_position_embeddings);
    m->set_vocab_size(cfg.vocab_size);
    m->set_architecture(ArchitectureName(cfg.architecture));
    for (const std::string& name : loop_->AttentionModeNames()) m->add_attention_modes(name);
    return grpc::Status::OK;
  }

 private:
  grpc::Status Authorize(const grpc::ServerContext& ctx) const {
    if (api_keys_.empty()) return grpc::Status::OK;
    const auto& md = ctx.client_metadata();
    // The HTTP API's rule (server/api_key.h): the scheme in any case, then the key compared
    // in constant time.
    auto it = md.find("authorization");
    if (it != md.end()) {
      const std::optional<std::string_view> token =
          BearerToken(std::string_view(it->second.data(), it->second.size()));
      if (token && MatchApiKey(api_keys_, *token) >= 0) return grpc::Status::OK;
    }
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing or wrong API key: send metadata 'authorization: Bearer <key>'");
  }

  grpc::Status CheckModel(const std::string& model) const {
    if (model.empty() || model == model_name_) return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("model \"", model, "\" is not served; ListModels reports \"",
                                     model_name_, "\""));
  }

  EngineLoop* const loop_;
  const std::vector<std::string> api_keys_;
  const std::string model_name_;
  FrontendPool* const frontend_;
  const int64_t max_prompt_bytes_;
  std::atomic<bool> shutting_down_{false};
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> next_request_id_{0};
  std::atomic<int64_t> num_client_cancellations_{0};
};

GrpcServer::~GrpcServer() { Shutdown(); }

void GrpcServer::BeginDrain() {
  {
    std::lock_guard<std::mutex> lock(watchdog_mu_);
    draining_ = true;
  }
  if (service_) service_->BeginDrain();
  if (server_) {
    if (auto* health = server_->GetHealthCheckService()) {
      health->SetServingStatus(false);
      health->SetServingStatus(kServiceName, false);
    }
  }
}

void GrpcServer::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    {
      std::lock_guard<std::mutex> lock(watchdog_mu_);
      watchdog_stop_ = true;
    }
    watchdog_cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    if (!server_) return;
    if (auto* health = server_->GetHealthCheckService()) health->Shutdown();
    service_->BeginShutdown();
    server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
    server_->Wait();
  });
}

int64_t GrpcServer::num_client_cancellations() const {
  return service_ ? service_->num_client_cancellations() : 0;
}

absl::StatusOr<std::unique_ptr<GrpcServer>> StartGrpcServer(EngineLoop* loop,
                                                            const std::string& host, int port,
                                                            const std::string& api_key,
                                                            const std::string& model_name,
                                                            double max_stall_seconds) {
  return StartGrpcServer(loop, host, port,
                         GrpcServerOptions{.api_keys = api_key.empty() ? std::vector<std::string>{}
                                                                            : std::vector<std::string>{api_key},
                                           .model_name = model_name,
                                           .max_stall_seconds = max_stall_seconds});
}

absl::StatusOr<std::unique_ptr<GrpcServer>> StartGrpcServer(EngineLoop* loop,
                                                            const std::string& host, int port,
                                                            const GrpcServerOptions& options) {
  if (loop == nullptr) return absl::InvalidArgumentError("StartGrpcServer: loop is null");
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("grpc port must be in [0, 65535], got ", port));
  }
  // An IPv6 literal needs brackets before the port.
  const bool bracket = host.find(':') != std::string::npos && !host.starts_with("[");
  const std::string address =
      bracket ? absl::StrCat("[", host, "]:", port) : absl::StrCat(host, ":", port);

  // Process-wide switches; both must precede the builder.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  auto server = std::unique_ptr<GrpcServer>(new GrpcServer());
  const int64_t context = loop->model().config.max_position_embeddings;
  const int64_t max_prompt_bytes = options.max_prompt_bytes > 0
                                       ? options.max_prompt_bytes
                                       : DefaultMaxPromptBytes(context);
  const double max_stall_seconds = options.max_stall_seconds;
  server->service_ = std::make_unique<GenerationService>(loop, options, max_prompt_bytes);
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &bound_port);
  builder.RegisterService(server->service_.get());
  // Text up to max_prompt_bytes, or a context's worth of token ids (a varint each), and the rest.
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<int64_t>(INT32_MAX, max_prompt_bytes + 8 * context + (1 << 20))));
  // gRPC sets SO_REUSEPORT by default: a second server on a taken port would "succeed" and share
  // it. A port in use must be an error instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  grpc::ResourceQuota quota("longview-grpc");
  quota.SetMaxThreads(kMaxServerThreads);
  builder.SetResourceQuota(quota);
  builder.experimental().SetInterceptorCreators(MakeServerInterceptors());
  server->server_ = builder.BuildAndStart();
  if (!server->server_ || bound_port == 0) {
    if (server->server_) server->server_->Shutdown();
    server->server_.reset();
    return absl::UnavailableError(absl::StrCat("gRPC: cannot listen on ", address));
  }
  server->port_ = bound_port;
  if (auto* health = server->server_->GetHealthCheckService()) {
    health->SetServingStatus(kServiceName, true);
    // The overall ("") and the service's status follow the engine loop's progress.
    GrpcServer* s = server.get();
    s->watchdog_ = std::thread([s, loop, health, max_stall_seconds] {
      bool serving = true;
      std::unique_lock<std::mutex> lock(s->watchdog_mu_);
      while (!s->watchdog_cv_.wait_for(lock, std::chrono::milliseconds(200),
                                       [s] { return s->watchdog_stop_; })) {
        if (s->draining_) return;  // NOT_SERVING from now on
        const bool ok = loop->StalledSeconds() <= max_stall_seconds;
        if (ok == serving) continue;
        serving = ok;
        health->SetServingStatus(ok);
        health->SetServingStatus(kServiceName, ok);
      }
    });
  }
  return server;
}

}  // namespace longview
