// The API-key helpers: Bearer parsing (scheme in any case), the secret comparison, and where
// `serve` takes its key from (--api-key, else $LONGVIEW_API_KEY; an empty key is an error).
#include "server/api_key.h"

#include <optional>
#include <string>
#include <vector>

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

TEST(MatchApiKeyTest, GivesTheIndexOfTheKeySent) {
  const std::vector<std::string> keys = {"sk-a", "sk-b", "sk-c"};
  EXPECT_EQ(MatchApiKey(keys, "sk-a"), 0);
  EXPECT_EQ(MatchApiKey(keys, "sk-c"), 2);
  EXPECT_EQ(MatchApiKey(keys, "sk-d"), -1);
  EXPECT_EQ(MatchApiKey(keys, "sk-"), -1);
  EXPECT_EQ(MatchApiKey(keys, ""), -1);
  EXPECT_EQ(MatchApiKey({}, "sk-a"), -1);
}

TEST(ResolveApiKeysTest, FlagsThenEnvironmentAndTheKeysFile) {
  const std::vector<std::string> none, two = {"k1", "k2"};
  EXPECT_EQ(*ResolveApiKeys(two, "from-env", std::nullopt), two);
  EXPECT_EQ(*ResolveApiKeys(none, "from-env", std::nullopt), std::vector<std::string>{"from-env"});
  EXPECT_TRUE(ResolveApiKeys(none, nullptr, std::nullopt)->empty());
  // The file's keys follow: comments, blank lines and spaces around keys do not count.
  EXPECT_EQ(*ResolveApiKeys(two, nullptr, std::string("# team keys\n  k3 \n\n\tk4\n")),
            (std::vector<std::string>{"k1", "k2", "k3", "k4"}));
  EXPECT_EQ(*ResolveApiKeys(none, nullptr, std::string("k3")), std::vector<std::string>{"k3"});
}

TEST(ResolveApiKeysTest, EmptyKeysEmptyFilesAndRepeatsAreRefused) {
  const std::vector<std::string> empty_flag = {"k1", ""};
  absl::StatusOr<std::vector<std::string>> r = ResolveApiKeys(empty_flag, nullptr, std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--api-key is empty"), std::string::npos) << r.status();
  r = ResolveApiKeys({}, nullptr, std::string("# only a comment\n\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--api-key-file holds no key"), std::string::npos)
      << r.status();
  const std::vector<std::string> one = {"k1"};
  r = ResolveApiKeys(one, nullptr, std::string("k2\nk1\n"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("API key number 3"), std::string::npos) << r.status();
}

}  // namespace
}  // namespace longview
