// The API-key helpers: Bearer parsing (scheme in any case), the secret comparison, and where
// `serve` takes its key from (--api-key, else $LONGVIEW_API_KEY; an empty key is an error).
#include "server/api_key.h"

#include <string>

#include "gtest/gtest.h"

namespace longview {
namespace {

TEST(BearerTokenTest, SchemeMatchesInAnyCase) {
  for (const char* header : {"Bearer sk-1", "bearer sk-1", "BEARER sk-1", "bEaReR sk-1",
                             "Bearer   sk-1", "Bearer\tsk-1", "Bearer sk-1  "}) {
    std::optional<std::string_view> token = BearerToken(header);
    ASSERT_TRUE(token.has_value()) << header;
    EXPECT_EQ(*token, "sk-1") << header;
  }
}

TEST(BearerTokenTest, OtherSchemesAndEmptyTokensAreNotBearer) {
  for (const char* header : {"", "Bearer", "Bearer ", "Bearer   ", "Bearersk-1", "Basic sk-1",
                             "Token sk-1", "sk-1", " Bearer sk-1"}) {
    EXPECT_FALSE(BearerToken(header).has_value()) << "'" << header << "'";
  }
}

TEST(SecretEqualsTest, OnlyTheExactSecretMatches) {
  EXPECT_TRUE(SecretEquals("sk-secret", "sk-secret"));
  EXPECT_FALSE(SecretEquals("sk-secreT", "sk-secret"));
  EXPECT_FALSE(SecretEquals("xk-secret", "sk-secret"));
  EXPECT_FALSE(SecretEquals("sk-secre", "sk-secret"));            // a prefix
  EXPECT_FALSE(SecretEquals("sk-secrets", "sk-secret"));          // longer
  EXPECT_FALSE(SecretEquals("sk-secretsk-secret", "sk-secret"));  // the secret repeated
  EXPECT_FALSE(SecretEquals("", "sk-secret"));
  EXPECT_FALSE(SecretEquals("", ""));  // an empty secret matches nothing
  EXPECT_FALSE(SecretEquals("x", ""));
  EXPECT_TRUE(SecretEquals(std::string("a\0b", 3), std::string("a\0b", 3)));
  EXPECT_FALSE(SecretEquals(std::string("a\0c", 3), std::string("a\0b", 3)));
}

TEST(ResolveApiKeyTest, FlagThenEnvironmentThenNone) {
  EXPECT_EQ(*ResolveApiKey(true, "from-flag", "from-env"), "from-flag");
  EXPECT_EQ(*ResolveApiKey(false, "", "from-env"), "from-env");
  EXPECT_EQ(*ResolveApiKey(false, "", nullptr), "");
}

TEST(ResolveApiKeyTest, AnEmptyKeyIsRefused) {
  absl::StatusOr<std::string> flag = ResolveApiKey(true, "", "from-env");
  ASSERT_FALSE(flag.ok());
  EXPECT_EQ(flag.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(flag.status().message().find("--api-key"), std::string::npos) << flag.status();
  absl::StatusOr<std::string> env = ResolveApiKey(false, "", "");
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("LONGVIEW_API_KEY"), std::string::npos) << env.status();
}

}  // namespace
}  // namespace longview
