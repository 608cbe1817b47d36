// Small pieces the HTTP routes share (the OpenAI API, sessions): JSON and error answers, the
// 405 check, exception guarding of pool work, loggable paths, the clock.
// Thread-safety: pure functions (the responder's own rules apply).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "nlohmann/json.hpp"
#include "server/http_server.h"

namespace longview {

// OpenAI's error object with the status's HTTP code (server/api_error.h).
void RespondError(HttpResponder& w, const absl::Status& status);
// 200 with the body as JSON (invalid UTF-8 replaced).
void RespondJson(HttpResponder& w, const nlohmann::json& body);
// Work for the frontend pool: an exception escaping it (bad_alloc, a parser slip) answers 500
// instead of ending the process (nothing above a pool thread catches).
std::function<void()> Guarded(std::function<void()> work,
                              const std::shared_ptr<HttpResponder>& responder);
// True when the request's method is in `allow` ("GET, HEAD"); otherwise answers 405 with an
// Allow header.
bool MethodAllowed(const HttpRequest& request, const std::string& allow, HttpResponder& w);
// A request path for a log line: printable ASCII only, at most 200 bytes.
std::string LoggablePath(const std::string& path);
// NotFound (code model_not_found, param model) unless `model` is empty or `served`.
absl::Status CheckModelName(const std::string& model, const std::string& served);
// Seconds since the Unix epoch.
int64_t NowSeconds();

}  // namespace longview
