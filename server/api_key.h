// API-key checks shared by the HTTP frontend and `serve`: the credential of an
// `Authorization: Bearer KEY` header, a comparison whose time does not depend on the secret, and
// where the key comes from (--api-key, else $LONGVIEW_API_KEY).
//
//   std::optional<std::string_view> token = BearerToken(request.Header("authorization"));
//   bool ok = token && SecretEquals(*token, key);
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace longview {

// The environment variable read when --api-key is not given.
inline constexpr char kApiKeyEnv[] = "LONGVIEW_API_KEY";

// The token of an `Authorization` value "Bearer TOKEN": the scheme matches case-insensitively
// (RFC 9110 §11.1), one or more spaces or tabs separate it from the token. nullopt for another
// scheme or an empty token.
std::optional<std::string_view> BearerToken(std::string_view authorization);

// True when `given` equals the non-empty `secret`. The time taken depends only on the length of
// `given` (which its sender knows), never on the secret's length or on where a difference lies.
bool SecretEquals(std::string_view given, std::string_view secret);

// The index of the key in `keys` that `given` equals (SecretEquals), or -1. Every key is compared,
// so the time taken does not tell which one matched.
int MatchApiKey(std::span<const std::string> keys, std::string_view given);

// The API keys of `serve`: every --api-key given (`flag_values`, in order), else the environment
// variable's (`env` as in ResolveApiKey), followed by the keys of a keys file (`keys_file_text`,
// one per line; blank lines and lines starting with '#' skipped; spaces around a key trimmed).
// Empty: no auth. InvalidArgument for an empty --api-key or $LONGVIEW_API_KEY, a keys file with
// no key, or a key given twice (sessions belong to a key, so two would be one owner).
absl::StatusOr<std::vector<std::string>> ResolveApiKeys(
    std::span<const std::string> flag_values, const char* env,
    const std::optional<std::string>& keys_file_text);

// The API key of `serve`: the flag's value when the flag was given, else the environment
// variable's (`env`: its value, or nullptr when unset), else "" (no auth). An empty key given
// either way is an InvalidArgument error: serving without auth must be asked for by leaving
// both out, not by an empty value.
absl::StatusOr<std::string> ResolveApiKey(bool flag_given, const std::string& flag_value,
                                          const char* env);

}  // namespace longview
