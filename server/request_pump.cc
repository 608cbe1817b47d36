// RequestPump: polling threads for generation jobs.
#include "server/request_pump.h"

#include <algorithm>
#include <utility>

namespace longview {

RequestPump::RequestPump(int num_threads) {
  int n = std::max(1, num_threads);
  for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>());
  for (int i = 0; i < n; ++i) threads_.emplace_back([this, w = workers_[i].get()] { Run(w); });
}

RequestPump::~RequestPump() { Stop(); }

void RequestPump::Add(std::shared_ptr<PumpJob> job) {
  std::lock_guard<std::mutex> stop_lock(mu_);  // Stop waits for an Add in progress
  if (stopping_) {
    job->Abandon();
    return;
  }
  // The least loaded worker takes it.
  Worker* best = nullptr;
  size_t best_load = 0;
  for (auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->mu);
    if (best == nullptr || w->num_jobs < best_load) {
      best = w.get();
      best_load = w->num_jobs;
    }
  }
  {
    std::lock_guard<std::mutex> lock(best->mu);
    best->incoming.push_back(std::move(job));
    ++best->num_jobs;
  }
  best->cv.notify_one();
}

size_t RequestPump::num_jobs() const {
  size_t n = 0;
  for (const auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->mu);
    n += w->num_jobs;
  }
  return n;
}

void RequestPump::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  for (auto& w : workers_) {
    std::lock_guard<std::mutex> lock(w->mu);
    w->cv.notify_all();
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void RequestPump::Run(Worker* w) {
  using std::chrono::milliseconds;
  std::vector<std::shared_ptr<PumpJob>> active;
  auto stopping = [this] {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  };
  while (true) {
    {
      std::unique_lock<std::mutex> lock(w->mu);
      if (active.empty()) {
        w->cv.wait_for(lock, milliseconds(100), [&] { return !w->incoming.empty(); });
      }
      for (auto& job : w->incoming) active.push_back(std::move(job));
      w->incoming.clear();
    }
    if (stopping()) break;
    if (active.empty()) continue;
    // One job: block on it briefly. Several: sweep without blocking.
    milliseconds wait = active.size() == 1 ? milliseconds(20) : milliseconds(0);
    bool progress = false;
    size_t kept = 0;
    for (size_t i = 0; i < active.size(); ++i) {
      PollResult r = active[i]->Poll(wait);
      if (r == PollResult::kDone) continue;
      if (r == PollResult::kProgress) progress = true;
      active[kept++] = std::move(active[i]);
    }
    size_t finished = active.size() - kept;
    active.resize(kept);
    if (finished > 0) {
      std::lock_guard<std::mutex> lock(w->mu);
      w->num_jobs -= finished;
    }
    if (!progress && active.size() > 1) {
      std::unique_lock<std::mutex> lock(w->mu);
      w->cv.wait_for(lock, milliseconds(1), [&] { return !w->incoming.empty(); });
    }
  }
  for (auto& job : active) job->Abandon();
  std::lock_guard<std::mutex> lock(w->mu);
  for (auto& job : w->incoming) job->Abandon();
  w->incoming.clear();
  w->num_jobs = 0;
}

}  // namespace longview
