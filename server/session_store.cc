#include "server/session_store.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace longview {
namespace {

absl::Status NotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrFormat("session `%s` does not exist", id));
}

}  // namespace

absl::StatusOr<std::string> SessionStore::Create(int owner, Attention attention,
                                                 int64_t created) {
  std::random_device rd;
  std::lock_guard<std::mutex> lock(mu_);
  int64_t& held = per_owner_[owner];
  if (held >= limits_.max_sessions_per_key) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "this API key holds %d sessions, the most a key may (--max-sessions-per-key); delete one "
        "first",
        held));
  }
  std::string id;
  do {
    id = absl::StrFormat("sess-%08x%08x%08x", rd(), rd(), rd());
  } while (sessions_.contains(id));
  auto e = std::make_shared<Entry>();
  e->s.id = id;
  e->s.owner = owner;
  e->s.attention = std::move(attention);
  e->s.created = created;
  sessions_.emplace(id, std::move(e));
  ++held;
  return id;
}

std::shared_ptr<SessionStore::Entry> SessionStore::Find(int owner, const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->s.owner != owner) return nullptr;
  return it->second;
}

absl::StatusOr<SessionSnapshot> SessionStore::Get(int owner, const std::string& id) const {
  std::shared_ptr<Entry> e = Find(owner, id);
  if (e == nullptr) return NotFound(id);
  std::lock_guard<std::mutex> lock(e->mu);
  return e->s;
}

absl::StatusOr<SessionSnapshot> SessionStore::Append(int owner, const std::string& id,
                                                     std::span<const int32_t> tokens,
                                                     const std::string& what,
                                                     const Commit& commit) {
  return AppendTo(owner, id, tokens, what, {}, 0, {}, commit);
}

absl::StatusOr<SessionSnapshot> SessionStore::AppendEmbeddings(int owner, const std::string& id,
                                                               int64_t hidden,
                                                               std::vector<float> rows,
                                                               std::vector<SessionFrame> frames,
                                                               const Commit& commit) {
  const int64_t n = hidden > 0 ? static_cast<int64_t>(rows.size()) / hidden : 0;
  if (n == 0 || n * hidden != static_cast<int64_t>(rows.size())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "embeddings: %d values are not a whole number of rows of %d", rows.size(), hidden));
  }
  const std::vector<int32_t> tokens(n, kEmbeddingToken);
  return AppendTo(owner, id, tokens, "embeddings", std::move(rows), hidden, std::move(frames),
                  commit);
}

absl::StatusOr<SessionSnapshot> SessionStore::AppendTo(int owner, const std::string& id,
                                                       std::span<const int32_t> tokens,
                                                       const std::string& what,
                                                       std::vector<float> rows, int64_t hidden,
                                                       std::vector<SessionFrame> frames,
                                                       const Commit& commit) {
  std::shared_ptr<Entry> e = Find(owner, id);
  if (e == nullptr) return NotFound(id);
  std::lock_guard<std::mutex> lock(e->mu);
  SessionSnapshot& s = e->s;
  const int64_t before = static_cast<int64_t>(s.tokens.size());
  const int64_t after = before + static_cast<int64_t>(tokens.size());
  if (after > limits_.max_tokens) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: the session holds %d tokens and this append adds %d; a session holds at most %d "
        "(--session-max-tokens)",
        what, before, tokens.size(), limits_.max_tokens));
  }
  const int64_t bytes = static_cast<int64_t>(rows.size() * sizeof(float));
  if (bytes > limits_.max_embedding_bytes - s.embedding_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: the session holds %d bytes of embeddings and this append adds %d (as float32); a "
        "session holds at most %d (--session-max-embedding-bytes)",
        what, s.embedding_bytes, bytes, limits_.max_embedding_bytes));
  }
  const size_t num_frames = s.frames.size();
  s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
  if (!rows.empty()) {
    s.embeddings.push_back(MakeEmbeddingRun(before, hidden, std::move(rows)));
    s.embedding_bytes += bytes;
    for (SessionFrame& f : frames) {
      f.start += before;
      if (f.block_id.empty()) f.block_id = absl::StrCat("pos-", f.start);
      s.frames.push_back(std::move(f));
    }
  }
  absl::Status st = commit(s);
  if (!st.ok()) {
    s.tokens.resize(before);
    s.frames.resize(num_frames);
    if (!s.embeddings.empty() && s.embeddings.back()->start >= before) {
      s.embeddings.pop_back();
      s.embedding_bytes -= bytes;
    }
    return st;
  }
  ++s.num_appends;
  return s;
}

absl::Status SessionStore::CountAsk(int owner, const std::string& id) {
  std::shared_ptr<Entry> e = Find(owner, id);
  if (e == nullptr) return NotFound(id);
  std::lock_guard<std::mutex> lock(e->mu);
  ++e->s.num_asks;
  return absl::OkStatus();
}

absl::Status SessionStore::Delete(int owner, const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->s.owner != owner) return NotFound(id);
  sessions_.erase(it);
  --per_owner_[owner];
  return absl::OkStatus();
}

std::vector<SessionSnapshot> SessionStore::List(int owner) const {
  std::vector<std::shared_ptr<Entry>> mine;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, e] : sessions_) {
      if (e->s.owner == owner) mine.push_back(e);
    }
  }
  std::vector<SessionSnapshot> out;
  for (const auto& e : mine) {
    std::lock_guard<std::mutex> lock(e->mu);
    out.push_back(e->s);
  }
  std::sort(out.begin(), out.end(), [](const SessionSnapshot& a, const SessionSnapshot& b) {
    return a.created != b.created ? a.created < b.created : a.id < b.id;
  });
  return out;
}

int64_t SessionStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(sessions_.size());
}

}  // namespace longview
