// RequestStream (the per-request output channel) and Histogram, declared in engine_loop.h.
#include <algorithm>

#include "scheduler/engine_loop.h"

namespace longview {
namespace {

// Folds `next` into `acc`: deltas of the same choice are concatenated, the rest is the latest.
void Merge(RequestOutput& acc, RequestOutput&& next) {
  for (SequenceDelta& d : next.deltas) {
    auto it = std::find_if(acc.deltas.begin(), acc.deltas.end(),
                           [&](const SequenceDelta& a) { return a.index == d.index; });
    if (it == acc.deltas.end()) {
      acc.deltas.push_back(std::move(d));
      continue;
    }
    it->text += d.text;
    it->token_ids.insert(it->token_ids.end(), d.token_ids.begin(), d.token_ids.end());
    it->logprobs.insert(it->logprobs.end(), d.logprobs.begin(), d.logprobs.end());
    for (auto& t : d.top_logprobs) it->top_logprobs.push_back(std::move(t));
    if (d.finished) {
      it->finished = true;
      it->finish_reason = d.finish_reason;
    }
  }
  acc.finished = acc.finished || next.finished;
  if (!next.status.ok()) acc.status = next.status;
  acc.prompt_tokens = next.prompt_tokens;
  acc.completion_tokens = next.completion_tokens;
  acc.cached_prompt_tokens = next.cached_prompt_tokens;
}

}  // namespace

void RequestStream::Push(RequestOutput out) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = out.finished;
    pending_.push_back(std::move(out));
  }
  cv_.notify_all();
}

bool RequestStream::Next(RequestOutput* out) {
  bool timed_out = false;
  return NextFor(out, std::chrono::milliseconds::max(), &timed_out);
}

bool RequestStream::NextFor(RequestOutput* out, std::chrono::milliseconds timeout,
                            bool* timed_out) {
  std::unique_lock<std::mutex> lock(mu_);
  auto ready = [&] { return !pending_.empty() || closed_; };
  *timed_out = false;
  if (timeout == std::chrono::milliseconds::max()) {
    cv_.wait(lock, ready);
  } else if (!cv_.wait_for(lock, timeout, ready)) {
    *timed_out = true;
    return false;
  }
  if (pending_.empty()) return false;  // closed and drained
  *out = std::move(pending_.front());
  pending_.pop_front();
  while (!pending_.empty()) {
    Merge(*out, std::move(pending_.front()));
    pending_.pop_front();
  }
  return true;
}

void Histogram::Observe(double v) {
  if (counts.size() != bounds.size() + 1) counts.assign(bounds.size() + 1, 0);
  const size_t i = std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin();
  ++counts[i];
  sum += v;
  ++count;
}

}  // namespace longview
