#include "server/http_helpers.h"

#include <chrono>
#include <exception>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/api_error.h"

namespace longview {

using json = nlohmann::json;

void RespondError(HttpResponder& w, const absl::Status& status) {
  w.Respond(HttpStatusFor(status), "application/json", ErrorJson(status));
}

void RespondJson(HttpResponder& w, const json& body) {
  w.Respond(200, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::function<void()> Guarded(std::function<void()> work,
                              const std::shared_ptr<HttpResponder>& responder) {
  return [work = std::move(work), responder] {
    try {
      work();
    } catch (const std::exception& e) {
      RespondError(*responder, absl::InternalError(absl::StrCat("internal error: ", e.what())));
    } catch (...) {
      RespondError(*responder, absl::InternalError("internal error"));
    }
  };
}

bool MethodAllowed(const HttpRequest& request, const std::string& allow, HttpResponder& w) {
  for (absl::string_view m : absl::StrSplit(allow, ", ")) {
    if (request.method == m) return true;
  }
  w.Respond(405, "application/json",
            ErrorJson(WithCode(absl::InvalidArgumentError(absl::StrCat(
                                   "method ", request.method, " is not allowed on ",
                                   request.path, "; use ", allow)),
                               "method_not_allowed")),
            {absl::StrCat("Allow: ", allow)});
  return false;
}

std::string LoggablePath(const std::string& path) {
  std::string out = path.substr(0, 200);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  if (path.size() > out.size()) out += "...";
  return out;
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::Status CheckModelName(const std::string& model, const std::string& served) {
  if (model.empty() || model == served) return absl::OkStatus();
  return WithCode(WithParam(absl::NotFoundError(absl::StrCat("The model `", model,
                                                             "` does not exist; this server "
                                                             "serves `",
                                                             served, "`.")),
                            "model"),
                  "model_not_found");
}

}  // namespace longview
