// One OpenAI request in flight: its engine streams (one per prompt, each with n choices) and
// the conversion of their outputs into the response — a JSON body when all choices finish, or
// server-sent events (`data: {...}\n\n` ... `data: [DONE]\n\n`) as tokens arrive. A client that
// disconnects cancels every stream, so the engine frees their blocks at its next step.
//
//   auto job = std::make_shared<GenerationJob>(spec, std::move(streams), responder, &tokenizer);
//   job->Begin();       // sends the SSE headers (and chat's role chunks) when streaming
//   pump.Add(job);
// Thread-safety: Begin, then Poll from one pump thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/text/tokenizer.h"
#include "nlohmann/json.hpp"
#include "scheduler/engine_loop.h"
#include "server/http_server.h"
#include "server/openai_request.h"
#include "server/request_pump.h"

namespace longview {

struct JobSpec {
  ApiKind kind = ApiKind::kCompletion;
  std::string id;     // "cmpl-..." / "chatcmpl-..."
  std::string model;  // served model name
  int64_t created = 0;
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;
  int32_t logprobs = -1;  // as ApiRequest::logprobs
  bool tokens_as_ids = false;  // logprobs name tokens "token_id:<id>" (vLLM)
  // Called with every choice's tokens once all finished without error, before the response's
  // end is sent (a session's ask appends its question and answer here).
  std::function<void(const std::vector<std::vector<int32_t>>& choice_tokens)> on_success;
};

class GenerationJob : public PumpJob {
 public:
  GenerationJob(JobSpec spec, std::vector<std::shared_ptr<RequestStream>> streams,
                std::shared_ptr<HttpResponder> responder, const Tokenizer* tokenizer);
  ~GenerationJob() override;

  void Begin();
  PollResult Poll(std::chrono::milliseconds wait) override;
  void Abandon() override;

 private:
  struct Choice {
    std::string text;
    std::vector<int32_t> tokens;
    std::vector<TokenLogprob> logprobs;
    std::vector<std::vector<TokenLogprob>> top_logprobs;
    std::vector<size_t> offsets;  // byte offset of each token in the text (approximate)
    size_t next_offset = 0;
    bool finished = false;
    FinishReason reason = FinishReason::kLength;
  };
  struct StreamState {
    std::shared_ptr<RequestStream> stream;
    bool done = false;
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    int64_t cached_tokens = 0;
  };

  // Applies one output; false once the job has failed and answered with an error.
  bool Apply(size_t stream_index, const RequestOutput& out);
  void Fail(const absl::Status& status);
  void Finish();
  void CancelAll();
  void SendEvent(const nlohmann::json& chunk);
  nlohmann::json ChunkBase() const;
  nlohmann::json Usage() const;
  // Logprobs of tokens [from, to) of a choice in the API's shape, or null when not requested.
  nlohmann::json LogprobsJson(const Choice& c, size_t from, size_t to) const;
  // A token as logprobs name it: its text, or "token_id:<id>" (return_tokens_as_token_ids).
  std::string TokenText(int32_t id) const;

  JobSpec spec_;
  std::vector<StreamState> streams_;
  std::vector<Choice> choices_;
  std::shared_ptr<HttpResponder> responder_;
  const Tokenizer* tokenizer_;
  bool done_ = false;
};

// The SSE framing of one JSON chunk.
std::string SseEvent(const nlohmann::json& chunk);

}  // namespace longview
