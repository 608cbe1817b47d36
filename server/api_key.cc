#include "server/api_key.h"

#include <cctype>

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace longview {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<std::string_view> BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() ||
      !EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  std::string_view rest = authorization.substr(kScheme.size());
  size_t start = rest.find_first_not_of(" \t");
  if (start == 0 || start == std::string_view::npos) return std::nullopt;  // "Bearerx", "Bearer "
  rest.remove_prefix(start);
  size_t end = rest.find_last_not_of(" \t");
  return rest.substr(0, end + 1);
}

bool SecretEquals(std::string_view given, std::string_view secret) {
  if (secret.empty()) return false;
  // Every byte of `given` is compared (against the secret repeated), and the length difference
  // is folded in, so no branch depends on the secret.
  size_t diff = given.size() ^ secret.size();
  for (size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i]) ^
            static_cast<unsigned char>(secret[i % secret.size()]);
  }
  return diff == 0;
}

absl::StatusOr<std::string> ResolveApiKey(bool flag_given, const std::string& flag_value,
                                          const char* env) {
  if (flag_given) {
    if (flag_value.empty()) {
      return absl::InvalidArgumentError(
          "--api-key is empty: give a non-empty key, or leave --api-key out (and $LONGVIEW_API_KEY "
          "unset) to serve without authentication");
    }
    return flag_value;
  }
  if (env == nullptr) return std::string();
  if (*env == '\0') {
    return absl::InvalidArgumentError(
        absl::StrCat("$", kApiKeyEnv,
                     " is set but empty: set it to the key, or unset it to serve without "
                     "authentication"));
  }
  return std::string(env);
}

int MatchApiKey(std::span<const std::string> keys, std::string_view given) {
  int match = -1;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (SecretEquals(given, keys[i]) && match < 0) match = static_cast<int>(i);
  }
  return match;
}

absl::StatusOr<std::vector<std::string>> ResolveApiKeys(
    std::span<const std::string> flag_values, const char* env,
    const std::optional<std::string>& keys_file_text) {
  std::vector<std::string> keys;
  if (flag_values.empty()) {
    ASSIGN_OR_RETURN(std::string key, ResolveApiKey(false, "", env));
    if (!key.empty()) keys.push_back(std::move(key));
  }
  for (const std::string& v : flag_values) {
    ASSIGN_OR_RETURN(std::string key, ResolveApiKey(true, v, env));
    keys.push_back(std::move(key));
  }
  if (keys_file_text.has_value()) {
    size_t from_file = 0;
    for (absl::string_view line : absl::StrSplit(*keys_file_text, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (line.empty() || line[0] == '#') continue;
      keys.emplace_back(line);
      ++from_file;
    }
    if (from_file == 0) {
      return absl::InvalidArgumentError(
          "--api-key-file holds no key (one per line; blank lines and '#' comments are skipped)");
    }
  }
  std::set<std::string_view> seen;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!seen.insert(keys[i]).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "API key number ", i + 1, " (of --api-key, then --api-key-file) repeats an earlier one"));
    }
  }
  return keys;
}

}  // namespace longview
