// Throughput of the KV page tiers (kvcache/kv_page_tier.h) beside their ceilings measured in the
// same run: CRC32C on one thread; the host tier's Insert and lookups beside memcpy of the same
// bytes; the disk tier's writes and reads beside a plain sequential file of the same bytes in the
// same folder, for both WAL choices and both min_blob_size choices (docs/bench/kv_tiers.md).
//
//   build/tools/bench/kv_tier_bench [--dir /tmp] [--mb 256] [--read-threads 4]
//
// Pages: 2 MiB (Llama-3-8B bf16: 16 tokens x 32 layers x K,V x 8 heads x 128 x 2 bytes) and
// 128 KiB (longview-tiny float32: 16 x 8 layers x 2 x 2 heads x 64 x 4 bytes). GB/s is of page
// bytes (1e9 bytes/s). "Cold" reads come after fdatasync + posix_fadvise(DONTNEED) of every file
// in the folder (the guest's page cache is dropped; a hypervisor's cache may remain).
// "written/page" is /proc/self/io write_bytes over the page bytes, for the whole case (inserts,
// background flushes and compactions, close, reopen): the write amplification.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/crc32c.h"
#include "kvcache/internal/page_tier_testing.h"
#include "kvcache/kv_page_tier.h"
#include "tools/bench/file_cache.h"

namespace longview {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;
using bench::SyncAndDrop;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
double Gbps(int64_t bytes, double s) { return bytes / s / 1e9; }

struct Geometry {
  const char* name;
  int64_t page_size;
  int64_t page_bytes;
};

PageRecord MakePage(const Geometry& g, uint64_t hash) {
  PageRecord p;
  p.hash = hash;
  p.parent_hash = hash * 7 + 1;
  p.tokens.resize(g.page_size);
  for (int64_t i = 0; i < g.page_size; ++i) p.tokens[i] = static_cast<int32_t>(hash * 16 + i);
  p.bytes = PageBytes::Allocate(static_cast<size_t>(g.page_bytes));
  uint64_t x = hash * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i + 8 <= g.page_bytes; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;  // random bytes: nothing for a compressor or dedup to win
    std::memcpy(p.bytes.mutable_data() + i, &x, 8);
  }
  return p;
}

std::vector<PageRecord> MakePages(const Geometry& g, int64_t n) {
  std::vector<PageRecord> pages;
  pages.reserve(n);
  for (int64_t i = 0; i < n; ++i) pages.push_back(MakePage(g, static_cast<uint64_t>(i + 1)));
  return pages;
}

// CPU seconds of this process (every thread: the tier's writer, readers and RocksDB's own).
double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int64_t ProcessWriteBytes() {
  std::ifstream in("/proc/self/io");
  std::string key;
  int64_t v = 0;
  while (in >> key >> v) {
    if (key == "write_bytes:") return v;
  }
  return 0;
}

void Crc(int64_t total) {
  std::vector<std::byte> buf(2 << 20);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<std::byte>(i * 131 + 7);
  auto time = [&](const char* name, auto fn) {
    uint32_t sink = 0;
    const auto t0 = Clock::now();
    for (int64_t done = 0; done < total; done += buf.size()) sink += fn(buf.data(), buf.size());
    const double s = Seconds(t0);
    std::printf("  %-34s %7.2f GB/s  (crc %08x)\n", name, Gbps(total, s), sink);
  };
  std::printf("CRC32C, one thread, 2 MiB buffer (in L2/L3), %lld MiB\n",
              static_cast<long long>(total >> 20));
  if (crc32c_internal::HasHardwareCrc32c()) {
    time("SSE4.2, 3 streams",
         [](const void* p, size_t n) { return crc32c_internal::ExtendHardware(0, p, n); });
  }
  time("portable slicing-by-8",
       [](const void* p, size_t n) { return crc32c_internal::ExtendPortable(0, p, n); });
}

void Host(const Geometry& g, int64_t total) {
  const int64_t n = total / g.page_bytes;
  const int64_t bytes = n * g.page_bytes;
  std::printf("host tier, %s pages (%lld KiB), %lld pages\n", g.name,
              static_cast<long long>(g.page_bytes >> 10), static_cast<long long>(n));
  std::vector<PageRecord> pages = MakePages(g, n);
  {
    std::vector<std::vector<std::byte>> dst(n, std::vector<std::byte>(g.page_bytes));
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(dst[i].data(), pages[i].bytes.data(), g.page_bytes);
    }
    std::printf("  %-34s %7.2f GB/s\n", "memcpy into touched buffers", Gbps(bytes, Seconds(t0)));
  }
  {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) {
      std::vector<std::byte> copy(pages[i].bytes.begin(), pages[i].bytes.end());
    }
    std::printf("  %-34s %7.2f GB/s\n", "memcpy into a new vector", Gbps(bytes, Seconds(t0)));
  }
  auto tier = MakeHostPageTier(
      {.capacity_bytes = 2 * total, .page_bytes = g.page_bytes, .page_size = g.page_size});
  auto t0 = Clock::now();
  for (PageRecord& p : pages) {
    if (!tier->Insert(std::move(p)).accepted) std::printf("  insert declined!\n");
  }
  std::printf("  %-34s %7.2f GB/s  (record moved in + CRC32C)\n", "Insert",
              Gbps(bytes, Seconds(t0)));
  const int64_t batch = 16;
  t0 = Clock::now();
  for (int64_t i = 0; i < n; i += batch) {
    std::vector<uint64_t> hashes;
    for (int64_t j = i; j < std::min(n, i + batch); ++j) hashes.push_back(j + 1);
    for (auto& r : tier->Wait(tier->StartLookup(hashes))) {
      if (!r.ok()) std::printf("  lookup failed: %s\n", r.status().ToString().c_str());
    }
  }
  std::printf("  %-34s %7.2f GB/s  (CRC32C + copy into new vectors)\n", "StartLookup + Wait",
              Gbps(bytes, Seconds(t0)));
}

void RawFile(const Geometry& g, int64_t total, const std::string& dir) {
  const std::string path = dir + "/raw.bin";
  std::vector<char> buf(g.page_bytes);
  PageRecord sample = MakePage(g, 1);
  std::memcpy(buf.data(), sample.bytes.data(), g.page_bytes);
  const int64_t n = total / g.page_bytes;
  const int64_t bytes = n * g.page_bytes;
  // Two passes, the second timed: on this VM a first write into fresh page-cache memory runs
  // at a fraction of the speed of a second one (the hypervisor backing guest memory).
  double s_write = 0, s_sync = 0;
  for (int pass = 0; pass < 2; ++pass) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) {
      if (write(fd, buf.data(), g.page_bytes) != g.page_bytes) std::perror("write");
    }
    s_write = Seconds(t0);
    if (fdatasync(fd) != 0) std::perror("fdatasync");
    s_sync = Seconds(t0);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
  auto read_all = [&] {
    int rfd = open(path.c_str(), O_RDONLY);
    const auto r0 = Clock::now();
    while (read(rfd, buf.data(), g.page_bytes) > 0) {
    }
    const double s = Seconds(r0);
    close(rfd);
    return s;
  };
  const double s_cold = read_all();
  const double s_warm = read_all();
  std::printf("  %-30s write %6.2f  +fdatasync %6.2f  read cold %6.2f  warm %6.2f GB/s\n",
              "raw file, sequential", Gbps(bytes, s_write), Gbps(bytes, s_sync),
              Gbps(bytes, s_cold), Gbps(bytes, s_warm));
  fs::remove(path);
}

struct DiskCase {
  const char* name;
  DiskPageTierTuning tuning;
  double capacity_fraction = 2.0;  // of the bytes written; < 1: oldest pages deleted as it goes
};

void Disk(const Geometry& g, int64_t total, const std::string& dir, int read_threads,
          const DiskCase& c) {
  const std::string path = dir + "/db";
  const int64_t n = total / g.page_bytes;
  const int64_t bytes = n * g.page_bytes;
  const DiskPageTierOptions options = {
      .path = path,
      .capacity_bytes = static_cast<int64_t>(c.capacity_fraction * total),
      .page_bytes = g.page_bytes,
      .page_size = g.page_size,
      .namespace_key = 42,
      .read_threads = read_threads,
      // The whole case fits in the queue: the caller never waits, the time is the writer's.
      .max_queued_bytes = 2 * total};
  std::vector<PageRecord> pages = MakePages(g, n);
  const int64_t io0 = ProcessWriteBytes();
  const double cpu0 = CpuSeconds();
  auto t0 = Clock::now();
  double s_drain = 0;
  int64_t declined = 0;
  {
    absl::StatusOr<std::unique_ptr<KvPageTier>> tier = OpenDiskPageTierTuned(options, c.tuning);
    if (!tier.ok()) {
      std::printf("  %s: %s\n", c.name, tier.status().ToString().c_str());
      return;
    }
    for (PageRecord& p : pages) declined += !(*tier)->Insert(std::move(p)).accepted;
    if (!WaitForDiskWritesForTesting(**tier, 600000)) std::printf("  drain timed out\n");
    s_drain = Seconds(t0);
  }
  SyncAndDrop(path);
  const double s_disk = Seconds(t0);
  const double cpu_write = CpuSeconds() - cpu0;
  // Reopen (replays the WAL where there is one), drop the cache again, read everything back.
  t0 = Clock::now();
  absl::StatusOr<std::unique_ptr<KvPageTier>> tier = OpenDiskPageTierTuned(options, c.tuning);
  const double s_open = Seconds(t0);
  if (!tier.ok()) {
    std::printf("  reopen: %s\n", tier.status().ToString().c_str());
    return;
  }
  (void)WaitForDiskWritesForTesting(**tier, 600000);
  const int64_t on_disk = SyncAndDrop(path);
  const int64_t io_bytes = ProcessWriteBytes() - io0;
  const int64_t held = (*tier)->stats().pages;
  auto read_all = [&] {
    int64_t ok = 0;
    const auto r0 = Clock::now();
    for (int64_t i = 0; i < n; i += 16) {
      std::vector<uint64_t> hashes;
      for (int64_t j = i; j < std::min(n, i + 16); ++j) hashes.push_back(j + 1);
      for (auto& r : (*tier)->Wait((*tier)->StartLookup(hashes))) ok += r.ok();
    }
    return std::make_pair(Seconds(r0), ok);
  };
  const double cpu1 = CpuSeconds();
  const auto [s_cold, ok_cold] = read_all();
  const double cpu_read = CpuSeconds() - cpu1;
  const auto [s_warm, ok_warm] = read_all();
  const int64_t read_bytes = ok_cold * g.page_bytes;
  std::printf(
      "  %-30s write %6.2f  to disk %6.2f  read cold %6.2f  warm %6.2f GB/s | reopen %5.2f s, "
      "written/page %4.2f, on disk/held %4.2f, held %lld/%lld, declined %lld, CPU s/GB write "
      "%4.2f read %4.2f\n",
      c.name, Gbps(bytes, s_drain), Gbps(bytes, s_disk), Gbps(read_bytes, s_cold),
      Gbps(ok_warm * g.page_bytes, s_warm), s_open, static_cast<double>(io_bytes) / bytes,
      held > 0 ? static_cast<double>(on_disk) / (held * g.page_bytes) : 0.0,
      static_cast<long long>(held), static_cast<long long>(n), static_cast<long long>(declined),
      cpu_write / (bytes / 1e9), cpu_read / (read_bytes / 1e9));
  tier->reset();
  fs::remove_all(path);
}

}  // namespace
}  // namespace longview

int main(int argc, char** argv) {
  using namespace longview;
  std::string dir = "/tmp";
  int64_t mb = 256;
  int read_threads = 4;
  CLI::App app("KV page tier throughput beside memcpy and a plain file");
  app.add_option("--dir", dir, "folder for the disk cases (a fresh subfolder is made, removed)");
  app.add_option("--mb", mb, "MiB of pages per case");
  app.add_option("--read-threads", read_threads, "the disk tier's read_threads");
  CLI11_PARSE(app, argc, argv);
  std::string tmpl = dir + "/kv_tier_bench_XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string work = tmpl;
  const int64_t total = mb << 20;

  Crc(int64_t{4} << 30);
  const Geometry geometries[] = {{"Llama-3-8B bf16", 16, 2 << 20},
                                 {"longview-tiny fp32", 16, 128 << 10}};
  for (const Geometry& g : geometries) Host(g, total);
  for (const Geometry& g : geometries) {
    std::printf("disk tier, %s pages (%lld KiB), %lld MiB, read_threads %d, folder %s\n", g.name,
                static_cast<long long>(g.page_bytes >> 10), static_cast<long long>(mb),
                read_threads, work.c_str());
    RawFile(g, total, work);
    const DiskCase cases[] = {
        {"WAL (sync=false), blobs", {.use_wal = true}},
        {"no WAL + Flush/batch, blobs", {.use_wal = false}},
        {"WAL, min_blob_size 64 MiB", {.use_wal = true, .min_blob_size = 64 << 20}},
        {"WAL, blobs, capacity 1/4", {.use_wal = true}, 0.25},
        {"no WAL + Flush, capacity 1/4", {.use_wal = false}, 0.25},
        {"WAL, min_blob 64 MiB, cap 1/4", {.use_wal = true, .min_blob_size = 64 << 20}, 0.25},
    };
    for (const DiskCase& c : cases) Disk(g, total, work, read_threads, c);
  }
  fs::remove_all(work);
  return 0;
}
