// The disk page tier (kv_page_tier.h) on RocksDB with integrated BlobDB.
//
// Layout (kvcache/internal/page_format.h): the default column family holds the pages (values in
// blob files), the "lv_page_index" column family the same keys with a 16-byte value (recency
// sequence number, stored size). Both are written in one WriteBatch and flushed together
// (atomic_flush), so they appear and vanish together. Open rebuilds the in-memory index from the
// small column family alone: iterating the pages would read every blob, i.e. the whole cache, at
// each start.
//
// Threads: the caller's (engine loop) thread runs the index and queues writes; one writer
// thread drains the queue into write batches; `read_threads` readers fetch and verify pages.
// One mutex (mu_) guards everything the writer and the caller share.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "kvcache/internal/page_format.h"
#include "kvcache/internal/page_tier_testing.h"
#include "kvcache/kv_page_tier.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace longview {
namespace {

namespace pf = page_format;

constexpr char kIndexColumnFamily[] = "lv_page_index";
// Values from this size on go to blob files. Every page is far larger (128 KiB .. 2 MiB), so
// the exact value only matters for malformed or foreign values; 4 KiB keeps anything smaller
// in the SST, where it costs less than a blob file reference (docs/bench/kv_tiers.md).
constexpr uint64_t kDefaultMinBlobSize = 4096;
// Space comes back a whole blob file at a time (blob GC during compaction), so smaller files
// keep the disk closer to capacity_bytes; 64 MiB is still a large sequential write.
constexpr uint64_t kBlobFileBytes = 64ull << 20;
// One write batch (one flush) takes at most this much of the queue: large enough to amortise a
// flush, small enough that queued pages are released soon (64 MiB measured no faster).
constexpr int64_t kMaxBatchBytes = 16ll << 20;
// The destructor writes what is queued for at most this long, then drops the rest.
constexpr auto kDrainTimeout = std::chrono::seconds(10);

absl::Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  const std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsIOError() || s.IsBusy() || s.IsTimedOut()) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

struct IndexEntry {
  uint64_t sequence = 0;  // recency; the key of `order_`
  uint64_t id = 0;        // insertion sequence: tells a re-inserted page from its predecessor
  int64_t stored_bytes = 0;
};

struct WriteOp {
  enum Kind { kPut, kDelete, kTouch } kind = kPut;
  uint64_t hash = 0;
  uint64_t sequence = 0;  // kPut: the insertion sequence (== IndexEntry::id); kTouch: recency
  int64_t stored_bytes = 0;
  std::shared_ptr<const PageRecord> page;  // kPut
};

// One StartLookup's answers, filled by the readers.
struct LookupState {
  std::mutex mu;
  std::condition_variable done;
  size_t remaining = 0;
  std::vector<absl::StatusOr<PageRecord>> results;
  std::vector<uint64_t> hashes;
  std::vector<uint64_t> ids;    // the index entry's id when the lookup started; 0: not held
  std::vector<char> io_failed;  // a read failed (not the page): answered NotFound, entry kept
};

struct ReadJob {
  std::shared_ptr<LookupState> lookup;
  size_t slot = 0;
  uint64_t hash = 0;
  std::shared_ptr<const PageRecord> queued;  // still in the write queue: served from memory
};

class DiskPageTier final : public KvPageTier {
 public:
  DiskPageTier(const DiskPageTierOptions& o, const DiskPageTierTuning& t)
      : options_(o), tuning_(t) {
    stats_.capacity_bytes = o.capacity_bytes;
    page_value_bytes_ = pf::DiskValueBytes(o.page_size, o.page_bytes);
    read_options_.verify_checksums = false;  // our CRC32C is checked instead (and faster)
    read_options_.fill_cache = false;
    // The WAL choice, measured both ways (docs/bench/kv_tiers.md). Either survives kill -9: the
    // WAL (sync=false) reaches the OS page cache when Write returns, and a killed process does
    // not take the page cache with it (power loss would); without the WAL, a Flush after each
    // batch of pages writes and syncs the blob and SST files before the pages count as written.
    // We take disableWAL + Flush: every page byte is written once instead of twice (WAL, then
    // the memtable flush into blob files), ~40% less CPU per GB written, no page values parked
    // in memtables, no WAL replay at restart, and written pages survive power loss as well. Its
    // cost, an fdatasync per batch, is paid on the writer thread while the queue serves reads.
    write_options_.sync = false;
    write_options_.disableWAL = !t.use_wal;
  }

  ~DiskPageTier() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      drain_deadline_ = std::chrono::steady_clock::now() + kDrainTimeout;
    }
    writer_wake_.notify_all();
    if (writer_.joinable()) writer_.join();
    {
      std::lock_guard<std::mutex> lock(read_mu_);
      read_stop_ = true;
    }
    read_wake_.notify_all();
    for (std::thread& t : readers_) t.join();
    if (db_ != nullptr) {
      for (rocksdb::ColumnFamilyHandle* cf : {pages_cf_, index_cf_}) {
        if (cf != nullptr) db_->DestroyColumnFamilyHandle(cf).PermitUncheckedError();
      }
      db_->Close().PermitUncheckedError();
      delete db_;
    }
  }

  absl::Status Open();

  const char* name() const override { return "disk"; }

  InsertResult Insert(PageRecord page) override {
    InsertResult result;
    std::unique_lock<std::mutex> lock(mu_);
    if (!pf::IsWellFormed(page, options_.page_size, options_.page_bytes)) {
      ++stats_.declined_pages;
      return result;
    }
    if (index_.contains(page.hash)) {
      result.accepted = true;
      return result;
    }
    const int64_t size = page_value_bytes_;
    const bool queue_full = queued_bytes_ > 0 && queued_bytes_ + size > options_.max_queued_bytes;
    if (inserts_disabled_ || size > options_.capacity_bytes || queue_full) {
      ++stats_.declined_pages;
      return result;
    }
    while (used_bytes_ + size > options_.capacity_bytes) EvictOldestLocked();
    const uint64_t seq = next_sequence_++;
    const uint64_t hash = page.hash;
    AddEntryLocked(hash, IndexEntry{.sequence = seq, .id = seq, .stored_bytes = size});
    auto shared = std::make_shared<const PageRecord>(std::move(page));
    pending_[hash] = shared;
    queue_.push_back(WriteOp{.kind = WriteOp::kPut,
                             .hash = hash,
                             .sequence = seq,
                             .stored_bytes = size,
                             .page = std::move(shared)});
    queued_bytes_ += size;
    ++stats_.inserted_pages;
    stats_.inserted_bytes += size;
    lock.unlock();
    writer_wake_.notify_one();
    result.accepted = true;
    return result;
  }

  bool Contains(uint64_t hash) const override {
    std::lock_guard<std::mutex> lock(mu_);
    return index_.contains(hash);
  }

  LookupHandle StartLookup(std::span<const uint64_t> hashes) override {
    auto state = std::make_shared<LookupState>();
    state->results.assign(hashes.size(), absl::NotFoundError("page not in the disk tier"));
    state->hashes.assign(hashes.begin(), hashes.end());
    state->ids.assign(hashes.size(), 0);
    state->io_failed.assign(hashes.size(), 0);
    std::vector<ReadJob> jobs;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.lookups += static_cast<int64_t>(hashes.size());
      for (size_t i = 0; i < hashes.size(); ++i) {
        auto it = index_.find(hashes[i]);
        if (it == index_.end()) continue;
        state->ids[i] = it->second.id;
        auto queued = pending_.find(hashes[i]);
        jobs.push_back(ReadJob{.lookup = state,
                               .slot = i,
                               .hash = hashes[i],
                               .queued = queued == pending_.end() ? nullptr : queued->second});
      }
    }
    state->remaining = jobs.size();
    {
      std::lock_guard<std::mutex> lock(read_mu_);
      for (ReadJob& job : jobs) read_queue_.push_back(std::move(job));
    }
    read_wake_.notify_all();
    const LookupHandle handle = next_handle_++;
    lookups_.emplace(handle, std::move(state));
    return handle;
  }

  std::vector<absl::StatusOr<PageRecord>> Wait(LookupHandle handle) override;

  void Erase(uint64_t hash) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!index_.contains(hash)) return;
      RemoveEntryLocked(hash);
      queue_.push_back(WriteOp{.kind = WriteOp::kDelete, .hash = hash});
    }
    writer_wake_.notify_one();
  }

  PageTierStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    PageTierStats s = stats_;
    s.pages = static_cast<int64_t>(index_.size());
    s.bytes = used_bytes_;
    return s;
  }

  bool WaitForWrites(int64_t timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return writer_idle_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                 [&] { return queue_.empty() && !writing_; });
  }

 private:
  void AddEntryLocked(uint64_t hash, const IndexEntry& e) {
    index_[hash] = e;
    order_[e.sequence] = hash;
    used_bytes_ += e.stored_bytes;
  }
  void RemoveEntryLocked(uint64_t hash) {
    auto it = index_.find(hash);
    order_.erase(it->second.sequence);
    used_bytes_ -= it->second.stored_bytes;
    index_.erase(it);
    pending_.erase(hash);  // a queued Put still writes it; the Delete queued after removes it
  }
  // Drops the least recently inserted or read page (the disk tier is the last: nothing is
  // displaced further down).
  void EvictOldestLocked() {
    const uint64_t hash = order_.begin()->second;
    RemoveEntryLocked(hash);
    queue_.push_back(WriteOp{.kind = WriteOp::kDelete, .hash = hash});
    ++stats_.evicted_pages;
  }

  void WriterLoop();
  // `bad[i]`: ops[i] is a Put of a page whose unchecked_crc does not match (not written).
  rocksdb::Status WriteBatchOf(const std::vector<WriteOp>& ops, bool skip_puts,
                               const std::vector<bool>& bad);
  void ReaderLoop();
  absl::StatusOr<PageRecord> ReadPage(const ReadJob& job, bool* io_failed);

  const DiskPageTierOptions options_;
  const DiskPageTierTuning tuning_;
  int64_t page_value_bytes_ = 0;
  rocksdb::DB* db_ = nullptr;
  rocksdb::ColumnFamilyHandle* pages_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* index_cf_ = nullptr;
  rocksdb::ReadOptions read_options_;
  rocksdb::WriteOptions write_options_;

  mutable std::mutex mu_;
  std::unordered_map<uint64_t, IndexEntry> index_;
  std::map<uint64_t, uint64_t> order_;  // recency sequence -> hash; begin() is the oldest
  int64_t used_bytes_ = 0;
  uint64_t next_sequence_ = 1;
  std::deque<WriteOp> queue_;
  std::unordered_map<uint64_t, std::shared_ptr<const PageRecord>> pending_;  // queued Puts
  int64_t queued_bytes_ = 0;
  bool writing_ = false;
  bool stop_ = false;
  bool inserts_disabled_ = false;  // after a write error, for the life of this tier
  std::chrono::steady_clock::time_point drain_deadline_;
  PageTierStats stats_;
  std::condition_variable writer_wake_;
  std::condition_variable writer_idle_;
  std::thread writer_;

  std::mutex read_mu_;
  std::condition_variable read_wake_;
  std::deque<ReadJob> read_queue_;
  bool read_stop_ = false;
  std::vector<std::thread> readers_;

  // The caller's thread only.
  std::unordered_map<LookupHandle, std::shared_ptr<LookupState>> lookups_;
  LookupHandle next_handle_ = 1;
};

absl::Status DiskPageTier::Open() {
  std::error_code ec;
  std::filesystem::create_directories(options_.path, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create the disk tier folder ", options_.path, ": ", ec.message()));
  }
  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  // Pages and their index entries flush together (they are written in one batch).
  db_options.atomic_flush = true;
  db_options.max_background_jobs = 2;
  // Keeps open file handles bounded: a large cache is thousands of blob files, and -1 (the
  // default) would keep every one open once read.
  db_options.max_open_files = 512;
  db_options.keep_log_file_num = 4;
  if (tuning_.env != nullptr) db_options.env = tuning_.env;

  rocksdb::ColumnFamilyOptions pages;
  // KV bytes (bf16 / fp32 activations) do not compress; compressing costs CPU for nothing.
  pages.compression = rocksdb::kNoCompression;
  pages.bottommost_compression = rocksdb::kNoCompression;
  pages.enable_blob_files = tuning_.enable_blob_files;
  pages.min_blob_size = tuning_.min_blob_size >= 0 ? static_cast<uint64_t>(tuning_.min_blob_size)
                                                   : kDefaultMinBlobSize;
  pages.blob_file_size = kBlobFileBytes;
  pages.blob_compression_type = rocksdb::kNoCompression;
  // Oldest pages are deleted first, so the oldest blob files turn into garbage first: GC during
  // compaction relocates what is still live in the oldest quarter and frees the files.
  pages.enable_blob_garbage_collection = true;
  pages.blob_garbage_collection_age_cutoff = 0.25;
  rocksdb::ColumnFamilyOptions index;
  index.compression = rocksdb::kNoCompression;

  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, pages}, {kIndexColumnFamily, index}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options_.path, families, &handles, &db_);
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening the disk tier at ", options_.path));
  pages_cf_ = handles[0];
  index_cf_ = handles[1];

  // Rebuild the index from this namespace's key range of the index column family.
  const std::string prefix = pf::DiskKey(options_.namespace_key, 0).substr(0, 8);
  std::vector<uint64_t> bad;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), index_cf_));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      if (it->key().size() != pf::kDiskKeyBytes) continue;  // not ours
      const uint64_t hash = pf::HashOfDiskKey(it->key().ToStringView());
      pf::IndexValue v;
      if (!pf::DecodeIndexValue(it->value().ToStringView(), &v) ||
          static_cast<int64_t>(v.stored_bytes) != page_value_bytes_) {
        bad.push_back(hash);
        continue;
      }
      AddEntryLocked(
          hash,
          IndexEntry{.sequence = v.sequence, .id = v.sequence, .stored_bytes = page_value_bytes_});
      next_sequence_ = std::max(next_sequence_, v.sequence + 1);
    }
    if (!it->status().ok()) {
      return FromRocks(it->status(),
                       absl::StrCat("reading the disk tier index at ", options_.path));
    }
  }
  // A smaller capacity than last time, or index entries that do not parse: delete them now.
  stats_.checksum_failures += static_cast<int64_t>(bad.size());
  for (uint64_t hash : bad) queue_.push_back(WriteOp{.kind = WriteOp::kDelete, .hash = hash});
  while (used_bytes_ > options_.capacity_bytes) EvictOldestLocked();

  writer_ = std::thread([this] { WriterLoop(); });
  for (int i = 0; i < options_.read_threads; ++i) {
    readers_.emplace_back([this] { ReaderLoop(); });
  }
  return absl::OkStatus();
}

std::vector<absl::StatusOr<PageRecord>> DiskPageTier::Wait(LookupHandle handle) {
  auto found = lookups_.find(handle);
  if (found == lookups_.end()) return {};  // unknown or already waited
  std::shared_ptr<LookupState> state = std::move(found->second);
  lookups_.erase(found);
  {
    std::unique_lock<std::mutex> lock(state->mu);
    state->done.wait(lock, [&] { return state->remaining == 0; });
  }
  bool wake_writer = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < state->results.size(); ++i) {
      const absl::StatusOr<PageRecord>& r = state->results[i];
      const uint64_t hash = state->hashes[i];
      if (r.ok()) {
        ++stats_.hits;
        stats_.hit_bytes += page_value_bytes_;
      }
      if (state->ids[i] == 0) continue;  // was not held: a plain miss
      if (!r.ok() && state->io_failed[i]) {
        ++stats_.io_errors;  // the page may be fine: keep it
        continue;
      }
      if (!r.ok() && absl::IsDataLoss(r.status())) ++stats_.checksum_failures;
      // Entries erased, or erased and inserted anew, since the lookup started are left alone.
      auto it = index_.find(hash);
      if (it == index_.end() || it->second.id != state->ids[i]) continue;
      if (r.ok()) {
        // A hit makes the page the most recent; the index column family remembers it.
        IndexEntry& e = it->second;
        order_.erase(e.sequence);
        e.sequence = next_sequence_++;
        order_[e.sequence] = hash;
        if (!inserts_disabled_) {
          queue_.push_back(WriteOp{.kind = WriteOp::kTouch,
                                   .hash = hash,
                                   .sequence = e.sequence,
                                   .stored_bytes = e.stored_bytes});
          wake_writer = true;
        }
        continue;
      }
      // DataLoss (a garbled or truncated value), or gone from the database under its index
      // entry: either way the entry is dropped, and the value deleted.
      RemoveEntryLocked(hash);
      queue_.push_back(WriteOp{.kind = WriteOp::kDelete, .hash = hash});
      wake_writer = true;
    }
  }
  if (wake_writer) writer_wake_.notify_one();
  return std::move(state->results);
}

void DiskPageTier::WriterLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    writer_wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stopping, nothing left
    std::vector<WriteOp> ops;
    int64_t batch_bytes = 0;
    while (!queue_.empty() && (ops.empty() || batch_bytes < kMaxBatchBytes)) {
      if (queue_.front().kind == WriteOp::kPut) batch_bytes += queue_.front().stored_bytes;
      ops.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    writing_ = true;
    const bool out_of_time = stop_ && std::chrono::steady_clock::now() > drain_deadline_;
    const bool skip_puts = inserts_disabled_ || out_of_time;
    lock.unlock();

    if (tuning_.before_write) tuning_.before_write();
    // Pages handed down unchecked (PageRecord::unchecked_crc, from the host tier) are checked
    // here, on this thread; a bad one is not written.
    std::vector<bool> bad(ops.size(), false);
    for (size_t i = 0; i < ops.size(); ++i) {
      const WriteOp& op = ops[i];
      bad[i] = op.kind == WriteOp::kPut && op.page->unchecked_crc.has_value() &&
               PageChecksumOf(*op.page) != *op.page->unchecked_crc;
    }
    const rocksdb::Status s = WriteBatchOf(ops, skip_puts, bad);

    lock.lock();
    const bool lost = skip_puts || !s.ok();
    for (size_t i = 0; i < ops.size(); ++i) {
      const WriteOp& op = ops[i];
      if (op.kind != WriteOp::kPut) continue;
      queued_bytes_ -= op.stored_bytes;
      auto p = pending_.find(op.hash);
      if (p != pending_.end() && p->second == op.page) pending_.erase(p);
      if (bad[i]) {
        ++stats_.checksum_failures;
        auto e = index_.find(op.hash);
        if (e != index_.end() && e->second.id == op.sequence) RemoveEntryLocked(op.hash);
        continue;
      }
      if (!lost) continue;
      // Accepted but never written: forget it, and count it as declined after all.
      ++stats_.declined_pages;
      auto e = index_.find(op.hash);
      if (e != index_.end() && e->second.id == op.sequence) RemoveEntryLocked(op.hash);
    }
    if (!s.ok()) {
      ++stats_.io_errors;
      if (!inserts_disabled_) {
        inserts_disabled_ = true;
        std::fprintf(stderr,
                     "longview: disk page tier %s: write failed (%s); inserts disabled, reads go "
                     "on\n",
                     options_.path.c_str(), s.ToString().c_str());
      }
    }
    writing_ = false;
    if (queue_.empty()) writer_idle_.notify_all();
  }
  writing_ = false;
  writer_idle_.notify_all();
}

rocksdb::Status DiskPageTier::WriteBatchOf(const std::vector<WriteOp>& ops, bool skip_puts,
                                           const std::vector<bool>& bad) {
  size_t reserve = 64;
  for (const WriteOp& op : ops) reserve += 64 + (op.kind == WriteOp::kPut ? op.stored_bytes : 32);
  rocksdb::WriteBatch batch(reserve);  // sized once: no reallocation copying the pages again
  bool has_pages = false;
  for (size_t i = 0; i < ops.size(); ++i) {
    const WriteOp& op = ops[i];
    const std::string key = pf::DiskKey(options_.namespace_key, op.hash);
    rocksdb::Status s;
    switch (op.kind) {
      case WriteOp::kPut: {
        if (skip_puts || bad[i]) break;
        // The checksum is computed here, off the caller's thread.
        const std::string header = pf::DiskHeader(*op.page, op.sequence);
        const rocksdb::Slice parts[3] = {
            rocksdb::Slice(header),
            rocksdb::Slice(reinterpret_cast<const char*>(op.page->tokens.data()),
                           op.page->tokens.size() * sizeof(int32_t)),
            rocksdb::Slice(reinterpret_cast<const char*>(op.page->bytes.data()),
                           op.page->bytes.size())};
        const rocksdb::Slice key_slice(key);
        has_pages = true;
        s = batch.Put(pages_cf_, rocksdb::SliceParts(&key_slice, 1), rocksdb::SliceParts(parts, 3));
        if (s.ok()) {
          s = batch.Put(index_cf_, key,
                        pf::EncodeIndexValue(
                            {.sequence = op.sequence, .stored_bytes = uint64_t(op.stored_bytes)}));
        }
        break;
      }
      case WriteOp::kDelete:
        s = batch.Delete(pages_cf_, key);
        if (s.ok()) s = batch.Delete(index_cf_, key);
        break;
      case WriteOp::kTouch:
        if (skip_puts) break;
        s = batch.Put(index_cf_, key,
                      pf::EncodeIndexValue(
                          {.sequence = op.sequence, .stored_bytes = uint64_t(op.stored_bytes)}));
        break;
    }
    if (!s.ok()) return s;
  }
  if (batch.Count() == 0) return rocksdb::Status::OK();
  rocksdb::Status s = db_->Write(write_options_, &batch);
  // Without the WAL, a batch of pages is written once flushed. Deletes and recency updates
  // alone wait for the next flush (or the flush at close): losing them to a kill costs a page
  // that comes back (still verified) or a stale recency, not a wrong page.
  if (s.ok() && write_options_.disableWAL && has_pages) {
    s = db_->Flush(rocksdb::FlushOptions(), {pages_cf_, index_cf_});
  }
  return s;
}

void DiskPageTier::ReaderLoop() {
  for (;;) {
    ReadJob job;
    {
      std::unique_lock<std::mutex> lock(read_mu_);
      read_wake_.wait(lock, [&] { return read_stop_ || !read_queue_.empty(); });
      if (read_stop_) return;  // unwaited lookups die with the tier
      job = std::move(read_queue_.front());
      read_queue_.pop_front();
    }
    bool io_failed = false;
    absl::StatusOr<PageRecord> r = ReadPage(job, &io_failed);
    LookupState& st = *job.lookup;
    std::lock_guard<std::mutex> lock(st.mu);
    st.results[job.slot] = std::move(r);
    st.io_failed[job.slot] = io_failed;
    if (--st.remaining == 0) st.done.notify_all();
  }
}

absl::StatusOr<PageRecord> DiskPageTier::ReadPage(const ReadJob& job, bool* io_failed) {
  if (job.queued != nullptr) return *job.queued;
  rocksdb::PinnableSlice value;
  const rocksdb::Status s =
      db_->Get(read_options_, pages_cf_, pf::DiskKey(options_.namespace_key, job.hash), &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("page ", job.hash, " missing from the disk tier"));
  }
  if (s.IsCorruption()) return absl::DataLossError(s.ToString());
  if (!s.ok()) {
    *io_failed = true;
    return absl::NotFoundError(absl::StrCat("page ", job.hash, " unreadable: ", s.ToString()));
  }
  return pf::DecodeDiskValue(value.ToStringView(), job.hash, options_.page_size,
                             options_.page_bytes, options_.read_arena.get());
}

absl::Status Validate(const DiskPageTierOptions& o) {
  if (o.path.empty()) return absl::InvalidArgumentError("disk tier: path is empty");
  if (o.capacity_bytes <= 0 || o.page_bytes <= 0 || o.page_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("disk tier: capacity_bytes, page_bytes and page_size must be > 0, got ",
                     o.capacity_bytes, ", ", o.page_bytes, ", ", o.page_size));
  }
  if (o.read_threads < 1 || o.max_queued_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("disk tier: read_threads and max_queued_bytes must be > 0, got ",
                     o.read_threads, ", ", o.max_queued_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<KvPageTier>> OpenDiskPageTierTuned(
    const DiskPageTierOptions& options, const DiskPageTierTuning& tuning) {
  RETURN_IF_ERROR(Validate(options));
  auto tier = std::make_unique<DiskPageTier>(options, tuning);
  RETURN_IF_ERROR(tier->Open());
  return std::unique_ptr<KvPageTier>(std::move(tier));
}

absl::StatusOr<std::unique_ptr<KvPageTier>> OpenDiskPageTier(const DiskPageTierOptions& options) {
  return OpenDiskPageTierTuned(options, DiskPageTierTuning{});
}

bool WaitForDiskWritesForTesting(KvPageTier& tier, int64_t timeout_ms) {
  auto* disk = dynamic_cast<DiskPageTier*>(&tier);
  return disk != nullptr && disk->WaitForWrites(timeout_ms);
}

}  // namespace longview
