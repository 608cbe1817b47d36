#include "server/grpc_request.h"

#include <cstdint>
#include <string>
#include <vector>

#include "engine/sampling/request_limits.h"
#include "absl/strings/str_cat.h"
#include "engine/attention/attention_mode.h"
#include "engine/sampling/sampler.h"

namespace longview {
namespace {

namespace v1 = ::longview::v1;

using request_limits::kMaxLogprobs;
using request_limits::kMaxN;

absl::StatusOr<Attention> ToAttention(const v1::AttentionConfig& a) {
  AttentionRequest request{.mode = a.mode()};
  if (a.has_window()) request.window = a.window();
  if (a.has_sinks()) request.sinks = a.sinks();
  if (a.has_top_k()) request.top_k = a.top_k();
  if (a.has_block_size()) request.block_size = a.block_size();
  if (a.stages_size() > 0) {
    request.stages.emplace();
    for (const v1::HipStage& s : a.stages()) {
      request.stages->push_back({s.chunk(), s.keep(), s.has_pool() ? s.pool() : 0});
    }
  }
  if (a.refresh_size() > 0) request.refresh.emplace(a.refresh().begin(), a.refresh().end());
  if (a.has_dense_layers()) {
    request.dense_layers.emplace(a.dense_layers().layers().begin(),
                                 a.dense_layers().layers().end());
  }
  if (a.has_dense_top_k()) request.dense_top_k = a.dense_top_k();
  return ParseAttention(request, "attention.");
}

absl::StatusOr<KvPolicySpec> ToKvPolicy(const v1::KvPolicyConfig& k) {
  KvPolicyRequest request{.policy = k.policy()};
  if (k.has_budget()) request.budget = k.budget();
  if (k.has_sinks()) request.sinks = k.sinks();
  if (k.has_window()) request.window = k.window();
  if (k.has_interval()) request.interval = k.interval();
  if (k.has_kernel()) request.kernel = k.kernel();
  if (k.has_alpha()) request.alpha = k.alpha();
  return ParseKvPolicy(request, "kv_policy.");
}

SamplingParams ToSamplingParams(const v1::SamplingParams& s) {
  SamplingParams p;
  if (s.has_temperature()) p.temperature = s.temperature();
  if (s.has_top_p()) p.top_p = s.top_p();
  if (s.has_top_k()) p.top_k = s.top_k();
  if (s.has_min_p()) p.min_p = s.min_p();
  if (s.has_seed()) p.seed = s.seed();
  if (s.has_presence_penalty()) p.presence_penalty = s.presence_penalty();
  if (s.has_frequency_penalty()) p.frequency_penalty = s.frequency_penalty();
  if (s.has_repetition_penalty()) p.repetition_penalty = s.repetition_penalty();
  return p;
}

}  // namespace

absl::Status CheckTokenIds(const google::protobuf::RepeatedField<int32_t>& ids, int64_t vocab_size,
                           const char* field) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "] = ", ids[i], " is outside [0, ", vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPromptBytes(const std::string& text, const char* field, int64_t max_bytes) {
  if (static_cast<int64_t>(text.size()) <= max_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(field, " is ", text.size(),
                                                 " bytes; this server takes at most ", max_bytes,
                                                 " (--max-prompt-bytes)"));
}

std::vector<int32_t> EncodeOnPool(FrontendPool* pool, const Tokenizer& tok, const std::string& text,
                                  bool add_special) {
  if (pool == nullptr) return tok.Encode(text, add_special);
  return pool->Run([&] { return tok.Encode(text, add_special); });
}

absl::StatusOr<GenerationRequest> ToGenerationRequest(const v1::GenerateRequest& req,
                                                      const LoadedModel& lm, FrontendPool* pool,
                                                      int64_t max_prompt_bytes) {
  GenerationRequest out;
  const int64_t vocab_size = lm.config.vocab_size;
  switch (req.prompt().kind_case()) {
    case v1::Prompt::kText:
      if (req.prompt().text().empty()) return absl::InvalidArgumentError("prompt.text is empty");
      RETURN_IF_ERROR(CheckPromptBytes(req.prompt().text(), "prompt.text", max_prompt_bytes));
      out.prompt_tokens = EncodeOnPool(pool, *lm.tokenizer, req.prompt().text(), true);
      if (out.prompt_tokens.empty()) {
        return absl::InvalidArgumentError("prompt.text encodes to no tokens");
      }
      break;
    case v1::Prompt::kTokenIds: {
      const auto& ids = req.prompt().token_ids().ids();
      if (ids.empty()) return absl::InvalidArgumentError("prompt.token_ids is empty");
      RETURN_IF_ERROR(CheckTokenIds(ids, vocab_size, "prompt.token_ids"));
      out.prompt_tokens.assign(ids.begin(), ids.end());
      break;
    }
    default:
      return absl::InvalidArgumentError("prompt: set prompt.text or prompt.token_ids");
  }

  out.sampling = ToSamplingParams(req.sampling());
  if (absl::Status s = ValidateSamplingParams(out.sampling); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("sampling.", s.message()));
  }

  const v1::StoppingCriteria& stopping = req.stopping();
  if (stopping.has_max_tokens()) out.max_tokens = stopping.max_tokens();
  if (out.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("stopping.max_tokens must be >= 1, got ", out.max_tokens));
  }
  const int64_t context = lm.config.max_position_embeddings;
  const int64_t num_prompt = static_cast<int64_t>(out.prompt_tokens.size());
  // The mode's limit: the context, or none where it re-assigns positions (StreamingLLM).
  ASSIGN_OR_RETURN(out.attention, ToAttention(req.attention()));
  if (req.has_kv_policy()) {
    ASSIGN_OR_RETURN(out.kv_policy, ToKvPolicy(req.kv_policy()));
  }
  if (num_prompt > out.attention->MaxSequenceLength(context) - out.max_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("stopping.max_tokens: prompt (", num_prompt, " tokens) + max_tokens (",
                     out.max_tokens, ") exceeds the model's context of ", context, " tokens"));
  }
  if (stopping.stop_size() > request_limits::kMaxStopStrings) {
    return absl::InvalidArgumentError(absl::StrCat("stopping.stop has ", stopping.stop_size(),
                                                   " strings; at most ",
                                                   request_limits::kMaxStopStrings));
  }
  for (int i = 0; i < stopping.stop_size(); ++i) {
    if (stopping.stop(i).empty()) {
      return absl::InvalidArgumentError(absl::StrCat("stopping.stop[", i, "] is empty"));
    }
    out.stop.push_back(stopping.stop(i));
  }
  out.ignore_eos = stopping.ignore_eos();

  const v1::OutputOptions& output = req.output();
  if (output.has_n()) out.n = output.n();
  if (out.n < 1 || out.n > kMaxN) {
    return absl::InvalidArgumentError(
        absl::StrCat("output.n must be in [1, ", kMaxN, "], got ", out.n));
  }
  if (output.has_logprobs()) {
    if (output.logprobs() < 0 || output.logprobs() > kMaxLogprobs) {
      return absl::InvalidArgumentError(absl::StrCat("output.logprobs must be in [0, ",
                                                     kMaxLogprobs, "], got ", output.logprobs()));
    }
    out.logprobs = output.logprobs();
  }

  return out;
}

}  // namespace longview
