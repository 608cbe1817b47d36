#include "server/session_store.h"

#include <algorithm>
#include <random>

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

absl::StatusOr<SessionSnapshot> SessionStore::Append(
    int owner, const std::string& id, std::span<const int32_t> tokens, const std::string& what,
    const std::function<absl::Status(const std::vector<int32_t>& all)>& commit) {
  std::shared_ptr<Entry> e = Find(owner, id);
  if (e == nullptr) return NotFound(id);
  std::lock_guard<std::mutex> lock(e->mu);
  const int64_t before = static_cast<int64_t>(e->s.tokens.size());
  const int64_t after = before + static_cast<int64_t>(tokens.size());
  if (after > limits_.max_tokens) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: the session holds %d tokens and this append adds %d; a session holds at most %d "
        "(--session-max-tokens)",
        what, before, tokens.size(), limits_.max_tokens));
  }
  e->s.tokens.insert(e->s.tokens.end(), tokens.begin(), tokens.end());
  absl::Status st = commit(e->s.tokens);
  if (!st.ok()) {
    e->s.tokens.resize(before);
    return st;
  }
  ++e->s.num_appends;
  return e->s;
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
