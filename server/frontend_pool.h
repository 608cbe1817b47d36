// The threads that parse and tokenize requests, off the HTTP io threads and bounding how many
// tokenizations run at once on both APIs (tokenizing costs hundreds of bytes per input byte).
// HTTP handlers Post their work and return; gRPC handlers, on gRPC's own threads, Run theirs and
// wait for it.
//
//   FrontendPool pool(/*num_threads=*/4);
//   pool.Post([=] { HandleGeneration(...); });              // from an io thread
//   std::vector<int32_t> ids = pool.Run([&] { return tok.Encode(text); });  // gRPC handler
//   pool.Stop();   // runs what is queued, then joins
// Thread-safety: every method is safe from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace longview {

class FrontendPool {
 public:
  explicit FrontendPool(int num_threads);
  ~FrontendPool();  // Stop()
  FrontendPool(const FrontendPool&) = delete;
  FrontendPool& operator=(const FrontendPool&) = delete;

  // Queues `work`; after Stop, runs it on the caller's thread instead.
  void Post(std::function<void()> work);

  // Runs `work` on a pool thread and returns its result (the caller waits).
  template <typename F>
  auto Run(F&& work) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    std::packaged_task<R()> task(std::forward<F>(work));
    std::future<R> result = task.get_future();
    Post([&task] { task(); });
    return result.get();
  }

  // Work queued and not started (for metrics and tests).
  int64_t queued() const;
  // Runs what is queued, then joins the threads. Idempotent.
  void Stop();

 private:
  void Loop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace longview
