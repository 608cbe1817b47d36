// The writer of DiskPageTierTest.PagesWrittenBeforeKillMinus9AreServed: inserts pages 1, 2, ...
// into a disk tier and, after each round of 16 has drained to RocksDB, replaces the marker file
// with the number of pages written; its parent SIGKILLs it mid-writes.
//
//   kv_tier_kill_child DB_FOLDER MARKER_FILE wal|nowal
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "kvcache/internal/page_tier_testing.h"
#include "kvcache/kv_page_tier.h"
#include "tests/kvcache/page_tier_test_util.h"

int main(int argc, char** argv) {
  using namespace longview;
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DB_FOLDER MARKER_FILE wal|nowal\n", argv[0]);
    return 2;
  }
  const std::string marker = argv[2];
  absl::StatusOr<std::unique_ptr<KvPageTier>> tier =
      OpenDiskPageTierTuned({.path = argv[1],
                             .capacity_bytes = 1ll << 30,
                             .page_bytes = 64 << 10,
                             .page_size = 16,
                             .namespace_key = 9},
                            {.use_wal = std::string(argv[3]) == "wal"});
  if (!tier.ok()) {
    std::fprintf(stderr, "%s\n", tier.status().ToString().c_str());
    return 1;
  }
  // At most 4096 pages (256 MiB), then wait for the kill.
  for (uint64_t h = 1; h <= 4096; ++h) {
    int tries = 0;
    while (!(*tier)->Insert(testing_pages::MakePage(h, 16, 64 << 10)).accepted) {
      if (++tries > 10000) return 3;  // declined for 10 s: something is wrong
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (h % 16 != 0) continue;
    if (!WaitForDiskWritesForTesting(**tier, 10000)) return 4;
    const std::string tmp = marker + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) return 5;
    std::fprintf(f, "%llu\n", static_cast<unsigned long long>(h));
    std::fclose(f);
    if (std::rename(tmp.c_str(), marker.c_str()) != 0) return 6;
  }
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}
