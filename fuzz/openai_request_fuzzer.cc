// Fuzz target: the OpenAI request parser (server/openai_request.h). The first byte picks the API
// (even: /v1/completions, odd: /v1/chat/completions); the rest is the request body.
//
// Beyond not crashing (no exception may escape: the parser returns every error as a status):
// an error is InvalidArgument naming its parameter, and an accepted request holds only values
// the parser documents, in particular sampling parameters the engine accepts.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/sampling/sampler.h"
#include "fuzz/fuzz_check.h"
#include "server/api_error.h"
#include "server/openai_request.h"

using longview::ApiKind;
using longview::ApiRequest;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const ApiKind kind = (data[0] & 1) != 0 ? ApiKind::kChat : ApiKind::kCompletion;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  absl::StatusOr<ApiRequest> r = longview::ParseApiRequest(kind, body);
  if (!r.ok()) {
    FUZZ_CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(!longview::StatusParam(r.status()).empty());
    FUZZ_CHECK(!r.status().message().empty());
    return 0;
  }
  FUZZ_CHECK(r->kind == kind);
  if (kind == ApiKind::kCompletion) {
    FUZZ_CHECK(!r->prompts.empty());
    for (const longview::PromptInput& p : r->prompts) {
      if (!p.is_tokens) continue;
      FUZZ_CHECK(!p.tokens.empty());
      for (int32_t id : p.tokens) FUZZ_CHECK(id >= 0);
    }
  } else {
    FUZZ_CHECK(!r->messages.empty());
  }
  FUZZ_CHECK(!r->max_tokens.has_value() || *r->max_tokens >= 1);
  FUZZ_CHECK(longview::ValidateSamplingParams(r->sampling).ok());
  FUZZ_CHECK(r->n >= 1 && r->n <= 128);
  FUZZ_CHECK(r->logprobs >= -1 && r->logprobs <= 20);
  FUZZ_CHECK(r->stop.size() <= 16);
  for (const std::string& s : r->stop) FUZZ_CHECK(!s.empty());
  FUZZ_CHECK(!r->include_usage || r->stream);
  FUZZ_CHECK(r->attention_mode == r->attention->name());
  return 0;
}
