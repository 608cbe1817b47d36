// SessionStore: ownership by API key, the limits, and appends that commit only with their work.
#include "server/session_store.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace longview {
namespace {

absl::Status Ok(const SessionSnapshot&) { return absl::OkStatus(); }

TEST(SessionStoreTest, AppendsAccumulateAndOnlyTheOwnerSeesTheSession) {
  SessionStore store({});
  absl::StatusOr<std::string> id = store.Create(/*owner=*/0, Attention(), /*created=*/100);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->rfind("sess-", 0), 0u);
  EXPECT_EQ(id->size(), 5u + 24u);
  const std::vector<int32_t> a = {1, 2, 3}, b = {4, 5};
  std::vector<int32_t> committed;
  absl::StatusOr<SessionSnapshot> s = store.Append(0, *id, a, "text", [&](const auto& all) {
    committed = all.tokens;
    return absl::OkStatus();
  });
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(committed, a);  // the commit sees every token after the append
  s = store.Append(0, *id, b, "token_ids", Ok);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->tokens, (std::vector<int32_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(s->num_appends, 2);
  EXPECT_EQ(s->created, 100);
  ASSERT_TRUE(store.CountAsk(0, *id).ok());
  EXPECT_EQ(store.Get(0, *id)->num_asks, 1);

  // Another key: NotFound for every call, as for an id that does not exist.
  EXPECT_EQ(store.Get(1, *id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Append(1, *id, a, "text", Ok).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.CountAsk(1, *id).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Delete(1, *id).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store.List(1).empty());
  EXPECT_EQ(store.Get(0, "sess-000000000000000000000000").status().code(),
            absl::StatusCode::kNotFound);
  // Nothing the other key tried changed the session.
  EXPECT_EQ(store.Get(0, *id)->tokens.size(), 5u);

  ASSERT_TRUE(store.Delete(0, *id).ok());
  EXPECT_EQ(store.Get(0, *id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.size(), 0);
}

TEST(SessionStoreTest, AFailedCommitAppendsNothing) {
  SessionStore store({});
  const std::string id = *store.Create(0, Attention(), 0);
  ASSERT_TRUE(store.Append(0, id, std::vector<int32_t>{7}, "text", Ok).ok());
  absl::StatusOr<SessionSnapshot> s =
      store.Append(0, id, std::vector<int32_t>{8, 9}, "text", [](const auto&) {
        return absl::ResourceExhaustedError("queue full");
      });
  EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(store.Get(0, id)->tokens, std::vector<int32_t>{7});
  EXPECT_EQ(store.Get(0, id)->num_appends, 1);
}

TEST(SessionStoreTest, LimitsPerKeyAndPerSession) {
  SessionStore store({.max_sessions_per_key = 2, .max_tokens = 4});
  const std::string a = *store.Create(0, Attention(), 0);
  ASSERT_TRUE(store.Create(0, Attention(), 0).ok());
  absl::StatusOr<std::string> third = store.Create(0, Attention(), 0);
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(third.status().message().find("--max-sessions-per-key"), std::string::npos);
  EXPECT_TRUE(store.Create(1, Attention(), 0).ok());  // another key has its own count
  ASSERT_TRUE(store.Delete(0, a).ok());
  EXPECT_TRUE(store.Create(0, Attention(), 0).ok());  // deleting gives the room back
  EXPECT_EQ(store.List(0).size(), 2u);

  const std::string b = store.List(1).at(0).id;
  ASSERT_TRUE(store.Append(1, b, std::vector<int32_t>{1, 2, 3}, "text", Ok).ok());
  bool committed = false;
  absl::StatusOr<SessionSnapshot> over =
      store.Append(1, b, std::vector<int32_t>{4, 5}, "token_ids", [&](const auto&) {
        committed = true;
        return absl::OkStatus();
      });
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(over.status().message().rfind("token_ids:", 0), 0u) << over.status();
  EXPECT_FALSE(committed);  // refused before any work was submitted
  EXPECT_EQ(store.Get(1, b)->tokens.size(), 3u);
}

TEST(SessionStoreTest, ConcurrentAppendsToOneSessionKeepEveryToken) {
  SessionStore store({});
  const std::string id = *store.Create(0, Attention(), 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const std::vector<int32_t> tokens = {t, i};
        ASSERT_TRUE(store.Append(0, id, tokens, "token_ids", [&](const auto& all) {
          // Each commit sees its own pair last: appends of one session do not interleave.
          EXPECT_EQ(all.tokens[all.tokens.size() - 2], t);
          EXPECT_EQ(all.tokens.back(), i);
          return absl::OkStatus();
        }).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  const SessionSnapshot s = *store.Get(0, id);
  EXPECT_EQ(s.tokens.size(), 800u);
  EXPECT_EQ(s.num_appends, 400);
  // Every thread's pairs arrive whole and in its own order.
  std::vector<int> next(4, 0);
  for (size_t k = 0; k < s.tokens.size(); k += 2) {
    const int t = s.tokens[k];
    ASSERT_GE(t, 0);
    ASSERT_LT(t, 4);
    EXPECT_EQ(s.tokens[k + 1], next[t]++);
  }
}

TEST(SessionStoreTest, EmbeddingAppendsKeepTheirRowsAndFramesAndRollBackWhole) {
  SessionStore store({.max_embedding_bytes = 10 * 4 * sizeof(float)});
  const std::string id = *store.Create(0, Attention(), 0);
  ASSERT_TRUE(store.Append(0, id, std::vector<int32_t>{1, 5}, "text", Ok).ok());
  std::vector<float> rows(3 * 4);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = 0.5f * static_cast<float>(i);
  SessionSnapshot seen;
  absl::StatusOr<SessionSnapshot> s = store.AppendEmbeddings(
      0, id, /*hidden=*/4, rows,
      {{.block_id = "a", .timestamp = 1.5, .start = 0, .rows = 2},
       {.block_id = "b", .timestamp = 2.0, .start = 2, .rows = 1}},
      [&](const SessionSnapshot& after) {
        seen = after;
        return absl::OkStatus();
      });
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->tokens, (std::vector<int32_t>{1, 5, kEmbeddingToken, kEmbeddingToken,
                                             kEmbeddingToken}));
  EXPECT_EQ(seen.tokens, s->tokens);  // the commit saw the rows too
  ASSERT_EQ(seen.embeddings.size(), 1u);
  EXPECT_EQ(seen.embeddings[0]->start, 2);
  EXPECT_EQ(FindEmbeddingRow(s->embeddings, 3)[1], rows[5]);
  EXPECT_EQ(FindEmbeddingRow(s->embeddings, 1), nullptr);
  ASSERT_EQ(s->frames.size(), 2u);
  EXPECT_EQ(s->frames[1].block_id, "b");
  EXPECT_EQ(s->frames[1].start, 4);  // session positions
  EXPECT_EQ(s->embedding_bytes, 48);
  EXPECT_TRUE(ValidateEmbeddingRuns(s->embeddings, s->tokens, 4).ok());

  // A failed commit leaves tokens, rows, frames and bytes as they were.
  absl::StatusOr<SessionSnapshot> failed = store.AppendEmbeddings(
      0, id, 4, std::vector<float>(8, 1.f), {{.block_id = "c", .start = 0, .rows = 2}},
      [](const SessionSnapshot&) { return absl::UnavailableError("engine stopped"); });
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  SessionSnapshot now = *store.Get(0, id);
  EXPECT_EQ(now.tokens.size(), 5u);
  EXPECT_EQ(now.embeddings.size(), 1u);
  EXPECT_EQ(now.frames.size(), 2u);
  EXPECT_EQ(now.embedding_bytes, 48);

  // Past the byte limit (10 rows of 4 floats; 3 held, 8 more asked): refused, naming the flag.
  absl::StatusOr<SessionSnapshot> over =
      store.AppendEmbeddings(0, id, 4, std::vector<float>(32, 1.f), {}, Ok);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(over.status().message().find("--session-max-embedding-bytes"), std::string::npos);
  // Rows that are not whole.
  EXPECT_EQ(store.AppendEmbeddings(0, id, 4, std::vector<float>(6, 1.f), {}, Ok).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Get(0, id)->tokens.size(), 5u);
}

}  // namespace
}  // namespace longview
