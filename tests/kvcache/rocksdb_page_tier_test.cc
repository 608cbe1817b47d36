// The disk page tier against a real RocksDB in a temporary folder.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/internal/page_tier_testing.h"
#include "kvcache/kv_page_tier.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "tests/kvcache/page_tier_test_util.h"

namespace longview {
namespace {

using testing_pages::MakePage;
using testing_pages::SamePage;

constexpr int64_t kPageSize = 16;
constexpr int64_t kPageBytes = 32 << 10;
// Header (56) + tokens + bytes: what one page costs the disk tier.
constexpr int64_t kValueBytes = 56 + kPageSize * 4 + kPageBytes;
constexpr uint64_t kNamespace = 0x1122334455667788ull;

PageRecord Page(uint64_t hash, uint64_t salt = 0) {
  return MakePage(hash, kPageSize, kPageBytes, salt);
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "lv_disk_tier_XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

DiskPageTierOptions Options(const std::string& path, int64_t num_pages = 64,
                            uint64_t ns = kNamespace) {
  return {.path = path,
          .capacity_bytes = num_pages * kValueBytes,
          .page_bytes = kPageBytes,
          .page_size = kPageSize,
          .namespace_key = ns,
          .read_threads = 3};
}

std::unique_ptr<KvPageTier> Open(const DiskPageTierOptions& o,
                                 const DiskPageTierTuning& tuning = {}) {
  absl::StatusOr<std::unique_ptr<KvPageTier>> tier = OpenDiskPageTierTuned(o, tuning);
  EXPECT_TRUE(tier.ok()) << tier.status();
  return tier.ok() ? std::move(*tier) : nullptr;
}

std::vector<absl::StatusOr<PageRecord>> Lookup(KvPageTier& tier, std::vector<uint64_t> hashes) {
  return tier.Wait(tier.StartLookup(hashes));
}

void ExpectPage(const absl::StatusOr<PageRecord>& got, const PageRecord& want) {
  ASSERT_TRUE(got.ok()) << "page " << want.hash << ": " << got.status();
  EXPECT_TRUE(SamePage(*got, want)) << "page " << want.hash << " differs";
}

void Drain(KvPageTier& tier) { ASSERT_TRUE(WaitForDiskWritesForTesting(tier, 10000)); }

// The key of a page as documented in kvcache/internal/page_format.h, built independently.
std::string Key(uint64_t ns, uint64_t hash) {
  std::string k;
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>(ns >> (8 * i)));
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>(hash >> (8 * i)));
  return k;
}

// The tier's database opened directly, every column family, as an outside writer would.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    std::vector<std::string> names;
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> families;
    for (const std::string& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions());
    rocksdb::Options options;
    rocksdb::Status s = rocksdb::DB::Open(options, path, families, &handles_, &db_);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  ~RawDb() {
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    delete db_;
  }
  // The page column family is RocksDB's default one.
  std::string Get(const std::string& key) {
    std::string v;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &v);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return v;
  }
  bool Has(const std::string& key) {
    std::string v;
    return db_->Get(rocksdb::ReadOptions(), key, &v).ok();
  }
  void Put(const std::string& key, const std::string& value) {
    ASSERT_TRUE(db_->Put(rocksdb::WriteOptions(), key, value).ok());
  }

 private:
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

TEST(DiskPageTierTest, RejectsBadOptions) {
  TempDir dir;
  DiskPageTierOptions o = Options(dir.path());
  o.page_bytes = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(OpenDiskPageTier(o).status()));
  o = Options(dir.path());
  o.read_threads = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(OpenDiskPageTier(o).status()));
  o = Options("");
  EXPECT_TRUE(absl::IsInvalidArgument(OpenDiskPageTier(o).status()));
}

TEST(DiskPageTierTest, InsertLookupRoundTrip) {
  TempDir dir;
  auto tier = Open(Options(dir.path()));
  ASSERT_NE(tier, nullptr);
  EXPECT_STREQ(tier->name(), "disk");
  for (uint64_t h : {10, 11, 12}) ASSERT_TRUE(tier->Insert(Page(h)).accepted);
  Drain(*tier);
  auto got = Lookup(*tier, {12, 99, 10, 11});
  ASSERT_EQ(got.size(), 4u);
  ExpectPage(got[0], Page(12));
  EXPECT_TRUE(absl::IsNotFound(got[1].status())) << got[1].status();
  ExpectPage(got[2], Page(10));
  ExpectPage(got[3], Page(11));
  EXPECT_TRUE(tier->Wait(12345).empty());
  const PageTierStats s = tier->stats();
  EXPECT_EQ(s.pages, 3);
  EXPECT_EQ(s.bytes, 3 * kValueBytes);
  EXPECT_EQ(s.inserted_pages, 3);
  EXPECT_EQ(s.lookups, 4);
  EXPECT_EQ(s.hits, 3);
  EXPECT_EQ(s.checksum_failures, 0);
  // Held already: accepted, nothing new written.
  EXPECT_TRUE(tier->Insert(Page(10)).accepted);
  EXPECT_EQ(tier->stats().inserted_pages, 3);
  // Malformed: declined.
  EXPECT_FALSE(tier->Insert(MakePage(13, kPageSize, kPageBytes - 8)).accepted);
  EXPECT_FALSE(tier->Insert(MakePage(14, kPageSize - 1, kPageBytes)).accepted);
  EXPECT_EQ(tier->stats().declined_pages, 2);
  EXPECT_FALSE(tier->Contains(13));
}

TEST(DiskPageTierTest, SurvivesCloseAndReopen) {
  TempDir dir;
  {
    auto tier = Open(Options(dir.path()));
    for (uint64_t h = 1; h <= 20; ++h) ASSERT_TRUE(tier->Insert(Page(h)).accepted);
    tier->Erase(5);
    // No drain: the destructor writes what is queued.
  }
  auto tier = Open(Options(dir.path()));
  EXPECT_EQ(tier->stats().pages, 19);
  EXPECT_EQ(tier->stats().bytes, 19 * kValueBytes);
  EXPECT_FALSE(tier->Contains(5));
  std::vector<uint64_t> hashes;
  for (uint64_t h = 1; h <= 20; ++h) hashes.push_back(h);
  auto got = Lookup(*tier, hashes);
  for (uint64_t h = 1; h <= 20; ++h) {
    if (h == 5) {
      EXPECT_TRUE(absl::IsNotFound(got[h - 1].status()));
    } else {
      ExpectPage(got[h - 1], Page(h));
    }
  }
}

TEST(DiskPageTierTest, NamespacesAreIsolated) {
  TempDir dir;
  const uint64_t other = kNamespace + 1;
  {
    auto a = Open(Options(dir.path(), 8, kNamespace));
    for (uint64_t h : {1, 2, 3}) ASSERT_TRUE(a->Insert(Page(h)).accepted);
  }
  {
    auto b = Open(Options(dir.path(), 2, other));
    EXPECT_EQ(b->stats().pages, 0);
    EXPECT_FALSE(b->Contains(1));
    EXPECT_TRUE(absl::IsNotFound(Lookup(*b, {1})[0].status()));
    // Same hashes, other bytes; b's capacity of 2 evicts only b's own pages.
    for (uint64_t h : {1, 2, 3}) ASSERT_TRUE(b->Insert(Page(h, /*salt=*/7)).accepted);
    EXPECT_EQ(b->stats().evicted_pages, 1);
  }
  {
    auto a = Open(Options(dir.path(), 8, kNamespace));
    EXPECT_EQ(a->stats().pages, 3);
    auto got = Lookup(*a, {1, 2, 3});
    for (uint64_t h : {1, 2, 3}) ExpectPage(got[h - 1], Page(h));
  }
  auto b = Open(Options(dir.path(), 2, other));
  EXPECT_EQ(b->stats().pages, 2);
  EXPECT_FALSE(b->Contains(1));
  auto got = Lookup(*b, {2, 3});
  ExpectPage(got[0], Page(2, 7));
  ExpectPage(got[1], Page(3, 7));
}

TEST(DiskPageTierTest, OverCapacityDeletesTheOldestFirst) {
  TempDir dir;
  {
    auto tier = Open(Options(dir.path(), 3));
    for (uint64_t h : {1, 2, 3}) ASSERT_TRUE(tier->Insert(Page(h)).accepted);
    Drain(*tier);
    ASSERT_TRUE(Lookup(*tier, {1})[0].ok());  // a hit: oldest first is now 2 3 1
    ASSERT_TRUE(tier->Insert(Page(4)).accepted);
    EXPECT_FALSE(tier->Contains(2));
    for (uint64_t h : {1, 3, 4}) EXPECT_TRUE(tier->Contains(h)) << h;
    EXPECT_EQ(tier->stats().evicted_pages, 1);
    EXPECT_EQ(tier->stats().pages, 3);
    EXPECT_EQ(tier->stats().bytes, 3 * kValueBytes);
  }
  // The order survives a restart (3 1 4): the next insert deletes 3.
  {
    auto tier = Open(Options(dir.path(), 3));
    EXPECT_EQ(tier->stats().pages, 3);
    EXPECT_FALSE(tier->Contains(2));
    ASSERT_TRUE(tier->Insert(Page(5)).accepted);
    EXPECT_FALSE(tier->Contains(3));
    for (uint64_t h : {1, 4, 5}) EXPECT_TRUE(tier->Contains(h)) << h;
  }
  // Reopened smaller: the oldest go at Open (1 4 5 -> 5).
  auto tier = Open(Options(dir.path(), 1));
  EXPECT_EQ(tier->stats().pages, 1);
  EXPECT_TRUE(tier->Contains(5));
  ExpectPage(Lookup(*tier, {5})[0], Page(5));
  // A page bigger than the whole tier: declined.
  DiskPageTierOptions o = Options(dir.path() + "/tiny");
  o.capacity_bytes = kValueBytes - 1;
  auto tiny = Open(o);
  EXPECT_FALSE(tiny->Insert(Page(1)).accepted);
  EXPECT_EQ(tiny->stats().declined_pages, 1);
}

// Holds the writer thread at its next batch until released.
class WriterGate {
 public:
  void Pass() {
    std::unique_lock<std::mutex> lock(mu_);
    ++arrived_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  void WaitArrived() {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(10), [&] { return arrived_ > 0; }));
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  bool open_ = false;
};

TEST(DiskPageTierTest, QueuedPagesAreFoundAndServedBeforeTheyAreWritten) {
  TempDir dir;
  WriterGate gate;
  DiskPageTierOptions o = Options(dir.path());
  o.max_queued_bytes = 2 * kValueBytes;
  auto tier = Open(o, {.before_write = [&] { gate.Pass(); }});
  ASSERT_TRUE(tier->Insert(Page(1)).accepted);
  gate.WaitArrived();  // the writer holds page 1's batch, unwritten
  ASSERT_TRUE(tier->Insert(Page(2)).accepted);
  // Two pages queued: the bound is reached, the next insert is declined.
  EXPECT_FALSE(tier->Insert(Page(3)).accepted);
  EXPECT_EQ(tier->stats().declined_pages, 1);
  EXPECT_TRUE(tier->Contains(1));
  EXPECT_TRUE(tier->Contains(2));
  EXPECT_FALSE(tier->Contains(3));
  auto got = Lookup(*tier, {2, 1});
  ExpectPage(got[0], Page(2));
  ExpectPage(got[1], Page(1));
  EXPECT_FALSE(WaitForDiskWritesForTesting(*tier, 50));  // really still held
  gate.Open();
  Drain(*tier);
  EXPECT_TRUE(tier->Insert(Page(3)).accepted);
  Drain(*tier);
  got = Lookup(*tier, {1, 2, 3});
  for (uint64_t h : {1, 2, 3}) ExpectPage(got[h - 1], Page(h));
}

TEST(DiskPageTierTest, GarbledOrTruncatedValuesAreDataLossAndDeleted) {
  TempDir dir;
  {
    auto tier = Open(Options(dir.path()));
    for (uint64_t h : {1, 2, 3, 4}) ASSERT_TRUE(tier->Insert(Page(h)).accepted);
  }
  {
    RawDb raw(dir.path());
    std::string v1 = raw.Get(Key(kNamespace, 1));
    ASSERT_EQ(static_cast<int64_t>(v1.size()), kValueBytes);
    v1[kValueBytes / 2] ^= 0x01;  // one bit in the page bytes
    raw.Put(Key(kNamespace, 1), v1);
    std::string v2 = raw.Get(Key(kNamespace, 2));
    raw.Put(Key(kNamespace, 2), v2.substr(0, v2.size() / 2));  // truncated
    raw.Put(Key(kNamespace, 3), v2);  // page 2's intact value under page 3's key
  }
  {
    auto tier = Open(Options(dir.path()));
    EXPECT_EQ(tier->stats().pages, 4);
    auto got = Lookup(*tier, {1, 2, 3, 4});
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(absl::IsDataLoss(got[i].status())) << i << ": " << got[i].status();
    }
    ExpectPage(got[3], Page(4));
    for (uint64_t h : {1, 2, 3}) EXPECT_FALSE(tier->Contains(h)) << h;
    const PageTierStats s = tier->stats();
    EXPECT_EQ(s.checksum_failures, 3);
    EXPECT_EQ(s.hits, 1);
    EXPECT_EQ(s.pages, 1);
    EXPECT_EQ(s.bytes, kValueBytes);
  }
  {
    RawDb raw(dir.path());
    for (uint64_t h : {1, 2, 3}) EXPECT_FALSE(raw.Has(Key(kNamespace, h))) << h;
    EXPECT_TRUE(raw.Has(Key(kNamespace, 4)));
  }
  auto tier = Open(Options(dir.path()));
  EXPECT_EQ(tier->stats().pages, 1);
  EXPECT_EQ(tier->stats().checksum_failures, 0);
}

// A file system whose writable files fail with NoSpace once `budget` bytes are spent.
class NoSpaceFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  NoSpaceFile(std::unique_ptr<rocksdb::FSWritableFile> f, std::atomic<int64_t>* budget)
      : FSWritableFileOwnerWrapper(std::move(f)), budget_(budget) {}
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
    if (!Spend(data.size())) return rocksdb::IOStatus::NoSpace("injected: disk full");
    return target()->Append(data, o, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (!Spend(data.size())) return rocksdb::IOStatus::NoSpace("injected: disk full");
    return target()->Append(data, o, info, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                     const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* dbg) override {
    if (!Spend(data.size())) return rocksdb::IOStatus::NoSpace("injected: disk full");
    return target()->PositionedAppend(data, offset, o, dbg);
  }
  uint64_t GetFileSize(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    return target()->GetFileSize(o, dbg);
  }

 private:
  bool Spend(size_t n) {
    return budget_->fetch_sub(static_cast<int64_t>(n)) >= static_cast<int64_t>(n);
  }
  std::atomic<int64_t>* budget_;
};

class NoSpaceFs : public rocksdb::FileSystemWrapper {
 public:
  NoSpaceFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "NoSpaceFs"; }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<NoSpaceFile>(std::move(*r), &budget);
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->ReopenWritableFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<NoSpaceFile>(std::move(*r), &budget);
    return s;
  }
  std::atomic<int64_t> budget{int64_t{1} << 60};
};

// The write paths differ with the WAL choice (a failing WAL append, or a failing flush), so
// the tests that kill or starve the writer run with both: the default without the WAL, and
// with it (use_wal).
class DiskPageTierWalTest : public ::testing::TestWithParam<bool> {};

TEST_P(DiskPageTierWalTest, FullDiskDisablesInsertsWhileReadsGoOn) {
  const bool use_wal = GetParam();
  TempDir dir;
  auto fs = std::make_shared<NoSpaceFs>();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  std::vector<uint64_t> maybe;  // inserted after the disk filled up
  {
    auto tier = Open(Options(dir.path()), {.use_wal = use_wal, .env = env.get()});
    for (uint64_t h : {1, 2}) ASSERT_TRUE(tier->Insert(Page(h)).accepted);
    Drain(*tier);
    fs->budget = kValueBytes * 3 / 2;
    ::testing::internal::CaptureStderr();
    // Accepted until a write fails (queued: the failure comes later), declined after.
    int accepted = 0;
    for (uint64_t h = 3; h <= 10; ++h) {
      accepted += tier->Insert(Page(h)).accepted;
      Drain(*tier);
      maybe.push_back(h);
    }
    EXPECT_GE(accepted, 1);
    EXPECT_LT(accepted, 8);
    const std::string err = ::testing::internal::GetCapturedStderr();
    // Logged once, naming the cause.
    EXPECT_NE(err.find("inserts disabled"), std::string::npos) << err;
    EXPECT_EQ(err.find("inserts disabled"), err.rfind("inserts disabled")) << err;
    EXPECT_NE(err.find("injected: disk full"), std::string::npos) << err;
    PageTierStats s = tier->stats();
    EXPECT_GE(s.io_errors, 1);
    int64_t held = 0;
    for (uint64_t h : maybe) held += tier->Contains(h);
    EXPECT_LT(held, 8);
    EXPECT_EQ(s.declined_pages, 8 - held);
    EXPECT_EQ(s.pages, 2 + held);
    // Inserts stay off; reads go on, for the pages written before and any written since.
    EXPECT_FALSE(tier->Insert(Page(11)).accepted);
    EXPECT_FALSE(tier->Contains(11));
    EXPECT_EQ(tier->stats().declined_pages, 8 - held + 1);
    auto got = Lookup(*tier, {1, 2});
    ExpectPage(got[0], Page(1));
    ExpectPage(got[1], Page(2));
    got = Lookup(*tier, maybe);
    for (size_t i = 0; i < maybe.size(); ++i) {
      if (tier->Contains(maybe[i])) {
        ExpectPage(got[i], Page(maybe[i]));
      } else {
        EXPECT_TRUE(absl::IsNotFound(got[i].status())) << got[i].status();
      }
    }
    EXPECT_EQ(tier->stats().checksum_failures, 0);
  }
  // Space again (a fresh process): the pages written before the failure are there.
  auto tier = Open(Options(dir.path()), {.use_wal = use_wal});
  auto got = Lookup(*tier, {1, 2});
  ExpectPage(got[0], Page(1));
  ExpectPage(got[1], Page(2));
  EXPECT_TRUE(tier->Insert(Page(12)).accepted);
}

// A child process inserts pages in a loop and, after each drained round, records how many are
// written (a marker file, replaced atomically); it is SIGKILLed mid-writes. Every page it
// reported must be served after reopening, and nothing served may be wrong.
TEST_P(DiskPageTierWalTest, PagesWrittenBeforeKillMinus9AreServed) {
  const bool use_wal = GetParam();
  TempDir dir;
  const std::string child = std::string(LONGVIEW_BINARY_DIR) + "/tests/kv_tier_kill_child";
  ASSERT_TRUE(std::filesystem::exists(child)) << child;
  const std::string db = dir.path() + "/db";
  const std::string marker = dir.path() + "/written";
  const std::string mode = use_wal ? "wal" : "nowal";
  std::vector<char*> argv = {const_cast<char*>(child.c_str()), const_cast<char*>(db.c_str()),
                             const_cast<char*>(marker.c_str()), const_cast<char*>(mode.c_str()),
                             nullptr};
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execv(child.c_str(), argv.data());
    _exit(127);
  }
  // Kill once 96 pages are reported, plus a little, so the kill lands amid writes.
  int64_t reported = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(marker);
    if (in >> reported && reported >= 96) break;
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, WNOHANG), 0) << "the writer exited early, status " << status;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(7));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  std::ifstream in(marker);
  ASSERT_TRUE(in >> reported);
  ASSERT_GE(reported, 96);

  // The writer's geometry (disk_tier_kill_child.cc).
  auto tier = Open({.path = db,
                    .capacity_bytes = int64_t{1} << 30,
                    .page_bytes = 64 << 10,
                    .page_size = 16,
                    .namespace_key = 9},
                   {.use_wal = use_wal});
  ASSERT_NE(tier, nullptr);
  std::vector<uint64_t> hashes;
  for (uint64_t h = 1; h <= static_cast<uint64_t>(reported) + 4096; ++h) hashes.push_back(h);
  auto got = Lookup(*tier, hashes);
  int64_t served = 0;
  for (size_t i = 0; i < hashes.size(); ++i) {
    const bool must = static_cast<int64_t>(hashes[i]) <= reported;
    if (!got[i].ok()) {
      EXPECT_FALSE(must) << "reported page " << hashes[i] << ": " << got[i].status();
      EXPECT_TRUE(absl::IsNotFound(got[i].status())) << hashes[i] << ": " << got[i].status();
      continue;
    }
    ++served;
    EXPECT_TRUE(SamePage(*got[i], MakePage(hashes[i], 16, 64 << 10))) << hashes[i];
  }
  EXPECT_GE(served, reported);
  EXPECT_EQ(tier->stats().checksum_failures, 0);
}

INSTANTIATE_TEST_SUITE_P(WalChoices, DiskPageTierWalTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "Wal" : "NoWalFlushPerBatch");
                         });

// Pages handed down from the host tier carry their stored checksum unchecked: the writer checks
// it off the caller's thread; a page that does not match is not written, is forgotten and
// counted; one that matches is stored as usual.
TEST(DiskPageTierTest, PagesHandedDownUncheckedAreCheckedByTheWriter) {
  TempDir dir;
  auto tier = Open(Options(dir.path()));
  PageRecord good = Page(1), bad = Page(2);
  good.unchecked_crc = PageChecksumOf(good);
  bad.unchecked_crc = PageChecksumOf(bad) ^ 1u;
  ASSERT_TRUE(tier->Insert(good).accepted);
  ASSERT_TRUE(tier->Insert(bad).accepted);
  ASSERT_TRUE(WaitForDiskWritesForTesting(*tier, 20000));
  EXPECT_TRUE(tier->Contains(1));
  EXPECT_FALSE(tier->Contains(2));
  EXPECT_EQ(tier->stats().checksum_failures, 1);
  EXPECT_EQ(tier->stats().pages, 1);
  auto got = Lookup(*tier, {1});
  ASSERT_TRUE(got[0].ok()) << got[0].status();
  EXPECT_TRUE(SamePage(*got[0], Page(1)));
  EXPECT_FALSE(got[0]->unchecked_crc.has_value());  // read back from disk: checked there
}

}  // namespace
}  // namespace longview
