// A small pool of threads that moves generation output from engine streams to HTTP responses,
// so that io threads never wait for tokens. Each job is polled: a thread with one job blocks
// on it for a short while (RequestStream::NextFor); a thread with many sweeps them without
// blocking and naps briefly when a sweep found nothing, so thousands of open streams cost a few
// threads.
//
//   RequestPump pump(/*num_threads=*/2);
//   pump.Add(std::make_shared<MyJob>(...));
//   ...
//   pump.Stop();   // drops unfinished jobs (their Abandon() is called)
// Thread-safety: Add and Stop are safe from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace longview {

enum class PollResult { kIdle, kProgress, kDone };

class PumpJob {
 public:
  virtual ~PumpJob() = default;
  // Moves whatever output is ready, waiting at most `wait` for some. kDone when the job is
  // finished (response complete, or client gone and generation cancelled).
  virtual PollResult Poll(std::chrono::milliseconds wait) = 0;
  // Called instead of further polls when the pump stops with the job unfinished.
  virtual void Abandon() {}
};

class RequestPump {
 public:
  explicit RequestPump(int num_threads);
  ~RequestPump();  // Stop()

  void Add(std::shared_ptr<PumpJob> job);
  void Stop();
  // Jobs currently held (for tests and logs).
  size_t num_jobs() const;

 private:
  struct Worker {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::shared_ptr<PumpJob>> incoming;
    size_t num_jobs = 0;  // under mu: incoming + active
  };
  void Run(Worker* w);

  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  bool stopping_ = false;
};

}  // namespace longview
