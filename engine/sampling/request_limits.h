// The ranges a generation request may ask for, one table for both APIs: the OpenAI JSON parser
// (server/openai_request.cc) and the gRPC validation (server/grpc_service.cc) read these, and
// ValidateSamplingParams (sampler.h) enforces the sampling ones for every caller of the engine.
// docs/SECURITY.md lists them for operators.
#pragma once

#include <cstdint>

namespace longview::request_limits {

inline constexpr double kMinTemperature = 0.0, kMaxTemperature = 2.0;
inline constexpr double kMinPenalty = -2.0, kMaxPenalty = 2.0;  // presence, frequency
inline constexpr double kMaxRepetitionPenalty = 100.0;          // > 0
inline constexpr int32_t kMaxN = 128;                            // sequences per prompt
inline constexpr int32_t kMaxLogprobs = 20;                      // top logprobs per token
inline constexpr int32_t kMaxStopStrings = 16;

}  // namespace longview::request_limits
