// Validation of a gRPC GenerateRequest (proto/longview.proto) into the engine's GenerationRequest:
// the checks the Generation service (server/grpc_service.cc) runs before submitting, public so
// that the fuzz target (fuzz/grpc_request_fuzzer.cc) runs exactly them. Every error is
// InvalidArgument naming the proto field at fault ("sampling.top_p must be in (0, 1], got 2").
//
//   absl::StatusOr<GenerationRequest> r =
//       ToGenerationRequest(proto, model, /*pool=*/nullptr, DefaultMaxPromptBytes(context));
// Thread-safety: functions of their arguments only (the tokenizer's const methods); safe from any
// thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/model/loaded_model.h"
#include "proto/longview.pb.h"
#include "scheduler/engine_loop.h"
#include "server/frontend_pool.h"

namespace longview {

// OK when every id is in [0, vocab_size); else InvalidArgument naming `field`[i].
absl::Status CheckTokenIds(const google::protobuf::RepeatedField<int32_t>& ids, int64_t vocab_size,
                           const char* field);

// OK when `text` is at most `max_bytes` long; else InvalidArgument naming `field`.
absl::Status CheckPromptBytes(const std::string& text, const char* field, int64_t max_bytes);

// Tokenizes on the frontend pool (bounded concurrency), or inline when `pool` is null.
std::vector<int32_t> EncodeOnPool(FrontendPool* pool, const Tokenizer& tok, const std::string& text,
                                  bool add_special);

// Builds the engine request from `req` (request_id left empty), tokenizing a text prompt on
// `pool` (may be null). Checks: a prompt set and non-empty, text at most `max_prompt_bytes`,
// token ids in the vocabulary, sampling values (ValidateSamplingParams), max_tokens >= 1 with
// prompt + max_tokens within the attention mode's limit for the model's context, non-empty stop
// strings, n in [1, 16], logprobs in [0, 20], and the attention mode's own rules.
absl::StatusOr<GenerationRequest> ToGenerationRequest(const v1::GenerateRequest& req,
                                                      const LoadedModel& lm, FrontendPool* pool,
                                                      int64_t max_prompt_bytes);

}  // namespace longview
