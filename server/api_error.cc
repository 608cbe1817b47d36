// OpenAI-shaped errors from absl::Status.
#include "server/api_error.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/strings/cord.h"

namespace longview {
namespace {

constexpr char kParamKey[] = "longview/param";
constexpr char kCodeKey[] = "longview/code";

std::string Payload(const absl::Status& status, const char* key) {
  auto value = status.GetPayload(key);
  return value ? std::string(*value) : std::string();
}

const char* ErrorType(int http_status) {
  switch (http_status) {
    case 400:
    case 404:
    case 413:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "service_unavailable";
    default:
      return "server_error";
  }
}

}  // namespace

absl::Status InvalidParam(std::string_view param, std::string_view message) {
  return WithParam(absl::InvalidArgumentError(std::string(message)), param);
}

absl::Status WithParam(absl::Status status, std::string_view param) {
  status.SetPayload(kParamKey, absl::Cord(std::string(param)));
  return status;
}

absl::Status WithCode(absl::Status status, std::string_view code) {
  status.SetPayload(kCodeKey, absl::Cord(std::string(code)));
  return status;
}

std::string StatusParam(const absl::Status& status) { return Payload(status, kParamKey); }
std::string StatusCode(const absl::Status& status) { return Payload(status, kCodeKey); }

int HttpStatusFor(const absl::Status& status) {
  if (StatusCode(status) == "request_too_large") return 413;
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

std::string ErrorJson(const absl::Status& status) {
  int http = HttpStatusFor(status);
  std::string param = StatusParam(status);
  std::string code = StatusCode(status);
  nlohmann::json error = {
      {"message", std::string(status.message())},
      {"type", ErrorType(http)},
      {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
      {"code", code.empty() ? nlohmann::json(http) : nlohmann::json(code)},
  };
  return nlohmann::json{{"error", error}}.dump(-1, ' ', false,
                                               nlohmann::json::error_handler_t::replace);
}

}  // namespace longview
