// Sessions (DESIGN §5): long-lived token histories that outlive requests, each owned by the API
// key that created it. The store keeps what a session is — its attention mode and every token
// appended so far — and enforces the limits; the HTTP routes (server/session_service.h) turn an
// append into a prompt-only request that computes and caches the new tokens' KV, and a question
// into a request whose prompt is the session's tokens followed by the question's, so that the
// prefix cache (and the tiers below it) serve the session's KV instead of recomputing it.
//
//   SessionStore store({.max_sessions_per_key = 64});
//   ASSIGN_OR_RETURN(std::string id, store.Create(/*owner=*/0, attention));
//   ASSIGN_OR_RETURN(SessionSnapshot s, store.Append(0, id, tokens, [&](const auto& all) {
//     return loop.Submit(...);   // the tokens are committed only when this succeeds
//   }));
//
// An id names a session only to its owner: another key gets NotFound, as for an id that never
// existed (the session's existence is not revealed).
// Thread-safety: every method is safe from any thread. Appends to one session are serialized
// (each sees the tokens of the ones before it); different sessions do not wait for each other.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "engine/attention/attention_mode.h"
#include "engine/runner/input_embeddings.h"

namespace longview {

struct SessionLimits {
  int64_t max_sessions_per_key = 64;
  // Tokens one session holds at most (its history is kept on the host: 4 bytes a token); the
  // attention mode's own limit (a dense session: the model's context) applies as well.
  int64_t max_tokens = int64_t{1} << 24;
  // Bytes of embedding rows one session holds at most (kept on the host as float32, so that
  // a history the cache lost can be recomputed).
  int64_t max_embedding_bytes = int64_t{1} << 30;
};

// A frame of appended embeddings: `rows` consecutive embedding positions from `start`, named by
// the client (ReKV's block of a video frame; "pos-<start>" when the client named none) and
// stamped with its time in the stream.
struct SessionFrame {
  std::string block_id;
  double timestamp = 0;
  int64_t start = 0;  // session position of its first row
  int64_t rows = 0;
};

// A session as a request sees it: a copy, consistent at one moment.
struct SessionSnapshot {
  std::string id;
  int owner = -1;  // the API key's index; -1 when the server runs without keys
  Attention attention;
  std::vector<int32_t> tokens;  // kEmbeddingToken where an embedding row stands
  EmbeddingRuns embeddings;     // the rows of those positions, one run per append
  std::vector<SessionFrame> frames;
  int64_t embedding_bytes = 0;
  int64_t created = 0;  // seconds since the epoch
  int64_t num_appends = 0;
  int64_t num_asks = 0;
};

class SessionStore {
 public:
  explicit SessionStore(SessionLimits limits) : limits_(limits) {}

  const SessionLimits& limits() const { return limits_; }

  // A new, empty session of `owner`; its id ("sess-" and 24 hex digits, unguessable).
  // ResourceExhausted when the owner already holds max_sessions_per_key sessions.
  absl::StatusOr<std::string> Create(int owner, Attention attention, int64_t created);
  // NotFound unless `owner` holds the session.
  absl::StatusOr<SessionSnapshot> Get(int owner, const std::string& id) const;
  using Commit = std::function<absl::Status(const SessionSnapshot& after)>;
  // Appends `tokens` when `commit(the session after the append)` succeeds (the caller submits
  // the work that encodes them there), and returns the session after it. The session is
  // locked meanwhile, so appends and asks of one session keep their order. NotFound as Get;
  // InvalidArgument naming `what` past limits().max_tokens; commit's error as it is (nothing
  // appended).
  absl::StatusOr<SessionSnapshot> Append(int owner, const std::string& id,
                                         std::span<const int32_t> tokens, const std::string& what,
                                         const Commit& commit);
  // Appends embedding rows ([n][hidden]) as n kEmbeddingToken positions, and `frames` (their
  // `start` relative to the first row; together covering the n rows in order), as Append.
  // InvalidArgument naming "embeddings" past max_tokens or max_embedding_bytes.
  absl::StatusOr<SessionSnapshot> AppendEmbeddings(int owner, const std::string& id,
                                                   int64_t hidden, std::vector<float> rows,
                                                   std::vector<SessionFrame> frames,
                                                   const Commit& commit);
  // Counts an ask (GET reports it). NotFound as Get.
  absl::Status CountAsk(int owner, const std::string& id);
  // NotFound as Get.
  absl::Status Delete(int owner, const std::string& id);
  // The owner's sessions, oldest first.
  std::vector<SessionSnapshot> List(int owner) const;
  int64_t size() const;

 private:
  struct Entry {
    std::mutex mu;  // guards `s` (its id and owner never change)
    SessionSnapshot s;
  };
  std::shared_ptr<Entry> Find(int owner, const std::string& id) const;
  // Append's work, `run` (rows for the new tokens, or null) and `frames` included.
  absl::StatusOr<SessionSnapshot> AppendTo(int owner, const std::string& id,
                                           std::span<const int32_t> tokens,
                                           const std::string& what, std::vector<float> rows,
                                           int64_t hidden, std::vector<SessionFrame> frames,
                                           const Commit& commit);

  const SessionLimits limits_;
  mutable std::mutex mu_;  // guards the maps; never held while an entry's lock is waited for
  std::unordered_map<std::string, std::shared_ptr<Entry>> sessions_;
  std::unordered_map<int, int64_t> per_owner_;
};

}  // namespace longview
