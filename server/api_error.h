// Errors of the OpenAI-compatible API: absl::Status values carrying the offending parameter and
// an OpenAI error code as payloads, mapped to HTTP statuses and OpenAI's error JSON
// (`{"error": {"message", "type", "param", "code"}}`).
//
//   return InvalidParam("max_tokens", "max_tokens must be at least 1, got -3");
//   ...
//   responder->Respond(HttpStatusFor(status), "application/json", ErrorJson(status));
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace longview {

// InvalidArgument naming `param` (also in the message, which the caller writes).
absl::Status InvalidParam(std::string_view param, std::string_view message);
// Attaches a parameter name / an OpenAI error code ("model_not_found", ...) to a status.
absl::Status WithParam(absl::Status status, std::string_view param);
absl::Status WithCode(absl::Status status, std::string_view code);
// The attached values, or "" when none.
std::string StatusParam(const absl::Status& status);
std::string StatusCode(const absl::Status& status);

// 400 InvalidArgument/OutOfRange/FailedPrecondition, 401 Unauthenticated, 403
// PermissionDenied, 404 NotFound, 413 (code "request_too_large"), 429 ResourceExhausted,
// 503 Unavailable, 500 otherwise.
int HttpStatusFor(const absl::Status& status);
// OpenAI's error object for the status.
std::string ErrorJson(const absl::Status& status);

}  // namespace longview
