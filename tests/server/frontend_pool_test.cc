#include "server/frontend_pool.h"

#include <atomic>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace longview {
namespace {

TEST(FrontendPoolTest, RunReturnsTheResultFromAPoolThread) {
  FrontendPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran_on;
  const std::string r = pool.Run([&] {
    ran_on = std::this_thread::get_id();
    return std::string("done");
  });
  EXPECT_EQ(r, "done");
  EXPECT_NE(ran_on, caller);
}

TEST(FrontendPoolTest, StopRunsWhatIsQueuedAndLaterWorkRunsInline) {
  std::atomic<int> ran{0};
  FrontendPool pool(1);
  for (int i = 0; i < 50; ++i) pool.Post([&] { ran.fetch_add(1); });
  pool.Stop();
  EXPECT_EQ(ran.load(), 50);
  EXPECT_EQ(pool.queued(), 0);
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran_on;
  pool.Post([&] { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, caller);
}

TEST(FrontendPoolTest, AtMostNumThreadsRunAtOnce) {
  FrontendPool pool(3);
  std::atomic<int> now{0}, peak{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 12; ++i) {
    callers.emplace_back([&] {
      pool.Run([&] {
        const int n = now.fetch_add(1) + 1;
        int p = peak.load();
        while (n > p && !peak.compare_exchange_weak(p, n)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        now.fetch_sub(1);
        return 0;
      });
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_LE(peak.load(), 3);
  EXPECT_GE(peak.load(), 2);
}

}  // namespace
}  // namespace longview
