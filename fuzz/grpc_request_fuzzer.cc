// Fuzz target: gRPC Generate request validation. The input is parsed as a
// longview.v1.GenerateRequest (bytes that are not one are skipped, as gRPC refuses them before the
// service sees them) and run through ToGenerationRequest (server/grpc_request.h), the checks the
// Generation service runs, against the golden Llama (tests/data/golden/llama, loaded once).
//
// Beyond not crashing: an error is InvalidArgument, and an accepted request is one the engine
// can run: prompt ids in the vocabulary, sampling the sampler accepts, n and logprobs in range,
// no empty stop string, and prompt + max_tokens within the attention mode's length limit.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "engine/model/loaded_model.h"
#include "engine/sampling/request_limits.h"
#include "engine/sampling/sampler.h"
#include "fuzz/fuzz_check.h"
#include "proto/longview.pb.h"
#include "server/grpc_request.h"

namespace {

// Small enough that long fuzzed prompts also reach the size check.
constexpr int64_t kMaxPromptBytes = 1024;

const longview::LoadedModel* model = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  absl::StatusOr<std::unique_ptr<longview::LoadedModel>> lm =
      longview::LoadedModel::Load(LONGVIEW_GOLDEN_LLAMA_DIR);
  if (!lm.ok()) {
    std::fprintf(stderr, "cannot load %s: %s\n", LONGVIEW_GOLDEN_LLAMA_DIR,
                 std::string(lm.status().message()).c_str());
    std::exit(1);
  }
  model = lm->release();  // lives for the whole process
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  longview::v1::GenerateRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<longview::GenerationRequest> r =
      longview::ToGenerationRequest(req, *model, /*pool=*/nullptr, kMaxPromptBytes);
  if (!r.ok()) {
    FUZZ_CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(!r.status().message().empty());
    return 0;
  }
  const int64_t vocab_size = model->config.vocab_size;
  const int64_t context = model->config.max_position_embeddings;
  FUZZ_CHECK(!r->prompt_tokens.empty());
  for (int32_t id : r->prompt_tokens) FUZZ_CHECK(id >= 0 && id < vocab_size);
  FUZZ_CHECK(longview::ValidateSamplingParams(r->sampling).ok());
  FUZZ_CHECK(r->max_tokens >= 1);
  // The limits table shared with the OpenAI API (engine/sampling/request_limits.h).
  FUZZ_CHECK(r->n >= 1 && r->n <= longview::request_limits::kMaxN);
  FUZZ_CHECK(r->logprobs >= -1 && r->logprobs <= longview::request_limits::kMaxLogprobs);
  FUZZ_CHECK(r->stop.size() <= static_cast<size_t>(longview::request_limits::kMaxStopStrings));
  for (const std::string& s : r->stop) FUZZ_CHECK(!s.empty());
  // The engine loop's own length check must agree with the frontend's.
  const int64_t num_prompt = static_cast<int64_t>(r->prompt_tokens.size());
  FUZZ_CHECK(r->attention->CheckLength(num_prompt, r->max_tokens, context).ok());
  return 0;
}
