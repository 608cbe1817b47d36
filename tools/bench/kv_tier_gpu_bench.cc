// The KV tiers on the GPU, each figure beside its ceiling measured in the same run, on a random
// bf16 model in Llama-3-8B's exact shape (2 MiB pages: 16 tokens x 32 layers x K,V x 8 heads x
// 128 x 2 bytes). Prints one JSON line per measurement (docs/bench/kv_tiers_gpu.md):
//
//   page_moves   device <-> host page moves through CudaKvStorage::StartWritePages /
//                StartReadPages (one cudaMemcpyAsync per page on the storage's copy stream,
//                per-page buffers from the pinned PageArena), beside one plain cudaMemcpyAsync
//                of the same bytes from/to one pinned buffer (goal >= 0.8x); pageable buffers too
//   ttft         time to first token of a `--context`-token prompt: recomputed (chunked
//                prefill), served from the host tier as the engine does it (TieredKvStore::Stage,
//                async page writes, checksums checked beside the copies, the last page's tokens
//                computed; also with the checks in the lookup, and unchecked), and from the
//                RocksDB tier after its files were dropped from the page cache (goals: host <=
//                0.1x, disk <= 0.5x of recompute); the first token must equal the recomputed one
//   disk_raw     the same bytes read back as one plain file in the same folder (the ceiling of
//                the disk tier's reads)
//   decode       decode steps of `--batch` sequences with and without write-back as the engine
//                does it (per step, the pages the batch fills read to pinned blocks without
//                fencing compute, their checksums on another thread, then inserted into a full
//                host tier), in alternating rounds (goal: <= 3% slower)
//
//   kv_tier_gpu_bench [--pages 1024] [--context 32768] [--disk-dir /tmp/kvbench]
//                     [--batch 64] [--decode-context 2048] [--steps 48]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "engine/cuda/cuda_kv_storage.h"
#include "engine/cuda/cuda_model_runner.h"
#include "engine/cuda/pinned_page_arena.h"
#include "kvcache/block_pool.h"
#include "kvcache/block_table.h"
#include "kvcache/internal/page_tier_testing.h"
#include "kvcache/kv_page_tier.h"
#include "kvcache/tiered_kv_store.h"
#include "tools/bench/file_cache.h"
#include "tools/bench/llama3_shape.h"

namespace longview {
namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}
double Gbps(double bytes, double ms) { return bytes / (ms * 1e-3) / 1e9; }

#define CHECK_OK(expr)                                                              \
  do {                                                                              \
    if (absl::Status _st = (expr); !_st.ok()) {                                     \
      std::fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, _st.ToString().c_str()); \
      std::exit(1);                                                                 \
    }                                                                               \
  } while (0)
#define CHECK_CUDA(expr) CHECK_OK(((expr) == cudaSuccess) ? absl::OkStatus() \
                                                         : absl::InternalError(#expr))

template <typename T>
T Value(absl::StatusOr<T> v) {
  CHECK_OK(v.status());
  return *std::move(v);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Device <-> host page moves of `n` pages against one plain pinned cudaMemcpyAsync each way.
void PageMoves(CudaKvStorage& kv, int64_t n) {
  const int64_t pb = kv.page_bytes();
  const double bytes = static_cast<double>(pb) * n;
  std::shared_ptr<PageArena> arena = Value(MakePinnedPageArena(pb, n));
  std::vector<PageBytes> bufs, back, pageable;
  std::vector<int32_t> pages(n);
  std::iota(pages.begin(), pages.end(), 0);
  for (int64_t i = 0; i < n; ++i) {
    bufs.push_back(PageBytes::Allocate(pb, arena.get()));
    std::byte* d = bufs.back().mutable_data();
    for (int64_t k = 0; k < pb; k += 4096) d[k] = static_cast<std::byte>(i * 31 + k / 4096);
    pageable.push_back(PageBytes::Allocate(pb));
    std::memset(pageable.back().mutable_data(), 1, pb);
  }
  std::vector<const std::byte*> src;
  std::vector<std::byte*> dst, dst_pageable;
  for (auto& b : bufs) src.push_back(b.data());
  for (auto& b : pageable) dst_pageable.push_back(b.mutable_data());
  // Ceiling: one pinned buffer of the same bytes, one copy each way, on a stream of its own.
  void* pinned = nullptr;
  CHECK_CUDA(cudaHostAlloc(&pinned, static_cast<size_t>(bytes), cudaHostAllocPortable));
  std::memset(pinned, 2, static_cast<size_t>(bytes));
  cudaStream_t s = nullptr;
  CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  auto plain = [&](bool to_host) {
    const auto t0 = Clock::now();
    CHECK_CUDA(cudaMemcpyAsync(to_host ? pinned : kv.pages(), to_host ? kv.pages() : pinned,
                               static_cast<size_t>(bytes),
                               to_host ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice, s));
    CHECK_CUDA(cudaStreamSynchronize(s));
    return Ms(t0);
  };
  auto ours_write = [&](std::span<const std::byte* const> from) {
    const auto t0 = Clock::now();
    const KvStorage::TransferId id = Value(kv.StartWritePages(pages, from));
    CHECK_OK(kv.WaitTransfer(id));
    return Ms(t0);
  };
  auto ours_read = [&](std::span<std::byte* const> to) {
    const auto t0 = Clock::now();
    const KvStorage::TransferId id = Value(kv.StartReadPages(pages, to));
    CHECK_OK(kv.WaitTransfer(id));
    return Ms(t0);
  };
  for (int i = 0; i < n; ++i) back.push_back(PageBytes::Allocate(pb, nullptr));
  for (auto& b : back) dst.push_back(b.mutable_data());
  double best[6] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
  for (int rep = 0; rep < 3; ++rep) {
    best[0] = std::min(best[0], plain(false));
    best[1] = std::min(best[1], ours_write(src));
    best[2] = std::min(best[2], plain(true));
    // Reads into pinned blocks: the write buffers themselves (their contents come back).
    std::vector<std::byte*> into_pinned;
    for (auto& b : bufs) into_pinned.push_back(b.mutable_data());
    best[3] = std::min(best[3], ours_read(into_pinned));
  }
  // Round trip check: what the last write put on the device comes back byte for byte.
  best[4] = ours_read(dst);
  bool same = true;
  for (int64_t i = 0; i < n && same; ++i) same = back[i] == bufs[i];
  std::vector<const std::byte*> src_pageable(dst_pageable.begin(), dst_pageable.end());
  best[5] = ours_write(src_pageable);
  std::printf(
      "{\"bench\": \"page_moves\", \"pages\": %lld, \"page_bytes\": %lld, "
      "\"h2d_plain_gbps\": %.2f, \"h2d_tier_gbps\": %.2f, \"h2d_ratio\": %.3f, "
      "\"d2h_plain_gbps\": %.2f, \"d2h_tier_gbps\": %.2f, \"d2h_ratio\": %.3f, "
      "\"d2h_pageable_gbps\": %.2f, \"h2d_pageable_gbps\": %.2f, \"round_trip_equal\": %s}\n",
      static_cast<long long>(n), static_cast<long long>(pb), Gbps(bytes, best[0]),
      Gbps(bytes, best[1]), best[0] / best[1], Gbps(bytes, best[2]), Gbps(bytes, best[3]),
      best[2] / best[3], Gbps(bytes, best[4]), Gbps(bytes, best[5]), same ? "true" : "false");
  std::fflush(stdout);
  CHECK_CUDA(cudaStreamDestroy(s));
  CHECK_CUDA(cudaFreeHost(pinned));
}

struct Prompt {
  std::vector<int32_t> tokens;
  BlockTable table{16};
};

ScheduledSequence Seq(int64_t id, std::span<const int32_t> toks, int64_t start,
                      const BlockTable& t) {
  ScheduledSequence s;
  s.seq_id = id;
  s.token_ids.assign(toks.begin(), toks.end());
  s.start_pos = start;
  s.block_ids.assign(t.blocks().begin(), t.blocks().end());
  s.need_logits = true;
  s.device_sampling = DeviceSampling{.temperature = 0.f};
  return s;
}

// Prefill of prompt[from, end) in chunks of `chunk` tokens; returns the first sampled token.
int32_t Prefill(CudaModelRunner& runner, const Prompt& p, int64_t from, int64_t chunk) {
  StepResult r;
  const int64_t n = static_cast<int64_t>(p.tokens.size());
  for (int64_t at = from; at < n; at += chunk) {
    const int64_t len = std::min(chunk, n - at);
    StepPlan plan;
    plan.seqs.push_back(Seq(0, std::span(p.tokens).subspan(at, len), at, p.table));
    plan.seqs.back().need_logits = at + len == n;
    if (at + len != n) plan.seqs.back().device_sampling.reset();
    CHECK_OK(runner.Execute(plan, r));
  }
  return r.tokens.at(0);
}

void Ttft(CudaModelRunner& runner, int64_t context, int64_t chunk, const std::string& disk_dir) {
  CudaKvStorage& kv = static_cast<CudaKvStorage&>(runner.kv_storage());
  const int64_t pb = kv.page_bytes(), ps = kv.layout().page_size;
  BlockPool pool(runner.num_pages());
  Prompt p;
  p.table = BlockTable(ps);
  for (int64_t i = 0; i < context; ++i) {
    p.tokens.push_back(static_cast<int32_t>((i * 104729 + 13) % 128000));
  }
  p.table.Append(*pool.Allocate(p.table.BlocksNeeded(context)));
  // Full pages a prefix hit can take: all but the last page's tokens are computed anyway (the
  // last token must run to give logits).
  const int64_t hit_pages = (context - 1) / ps;
  const int64_t hit_tokens = hit_pages * ps;
  (void)Prefill(runner, p, 0, chunk);  // warm-up (kernels, autotuning)
  CHECK_CUDA(cudaDeviceSynchronize());
  auto t0 = Clock::now();
  const int32_t first = Prefill(runner, p, 0, chunk);
  const double recompute_ms = Ms(t0);

  // The prompt's real KV pages, as demotion would read them, into the tiers.
  std::shared_ptr<PageArena> arena = Value(MakePinnedPageArena(pb, hit_pages + 64));
  std::vector<PageRecord> records(hit_pages);
  std::vector<int32_t> pages(hit_pages);
  std::vector<std::byte*> dst(hit_pages);
  for (int64_t i = 0; i < hit_pages; ++i) {
    pages[i] = p.table.blocks()[i];
    records[i].hash = 0x1000 + i;
    records[i].parent_hash = i == 0 ? 7 : 0x1000 + i - 1;
    records[i].tokens.assign(p.tokens.begin() + i * ps, p.tokens.begin() + (i + 1) * ps);
    records[i].bytes = PageBytes::Allocate(pb, arena.get());
    dst[i] = records[i].bytes.mutable_data();
  }
  CHECK_OK(kv.WaitTransfer(Value(kv.StartReadPages(pages, dst))));
  std::vector<uint64_t> hashes;
  for (const PageRecord& r : records) hashes.push_back(r.hash);

  // Serve from a tier as the engine does: TieredKvStore::Stage (one batched lookup), the pages'
  // asynchronous writes to the device, the checks left to the consumer (CheckStaged, beside the
  // copies), then the last page's tokens computed (the forward waits for the writes on the GPU).
  auto serve_from = [&](std::unique_ptr<KvPageTier> tier, double* lookup_ms) {
    std::vector<std::unique_ptr<KvPageTier>> tiers;
    tiers.push_back(std::move(tier));
    TieredKvStore store(std::move(tiers));
    CHECK_CUDA(cudaDeviceSynchronize());
    const auto s0 = Clock::now();
    store.Stage(hashes);
    *lookup_ms = Ms(s0);
    std::vector<const std::byte*> src;
    for (uint64_t h : hashes) {
      const PageRecord* r = store.Staged(h);
      CHECK_OK(r != nullptr ? absl::OkStatus() : absl::NotFoundError("page not staged"));
      src.push_back(r->bytes.data());
    }
    const KvStorage::TransferId id = Value(kv.StartWritePages(pages, src));
    const bool clean = store.CheckStaged(hashes).empty();
    const int32_t tok = Prefill(runner, p, hit_tokens, chunk);
    const double ms = Ms(s0);
    CHECK_OK(kv.WaitTransfer(id));
    CHECK_OK(clean ? absl::OkStatus() : absl::DataLossError("a staged page failed its check"));
    for (uint64_t h : hashes) store.Promoted(h);
    return std::make_pair(ms, tok);
  };
  using Verify = HostPageTierOptions::Verify;
  auto make_host = [&](Verify verify) {
    std::unique_ptr<KvPageTier> t = MakeHostPageTier(
        {.capacity_bytes = (hit_pages + 8) * (pb + ps * 4 + 64), .page_bytes = pb,
         .page_size = ps, .arena = arena, .verify = verify});
    for (const PageRecord& r : records) (void)t->Insert(r);
    return t;
  };
  double nv_lookup_ms = 0, host_lookup_ms = 0, lc_lookup_ms = 0;
  (void)serve_from(make_host(Verify::kNever), &nv_lookup_ms);  // warm-up
  const auto [nv_ms, nv_tok] = serve_from(make_host(Verify::kNever), &nv_lookup_ms);
  const auto [lc_ms, lc_tok] = serve_from(make_host(Verify::kOnLookup), &lc_lookup_ms);
  // The server's default (--kv-host-verify true): checked by the consumer beside the copies.
  const auto [host_ms, host_tok] =
      serve_from(make_host(Verify::kByConsumer), &host_lookup_ms);
  std::printf("{\"bench\": \"ttft_host_checks\", \"checked_beside_copy_ms\": %.1f, "
              "\"checked_in_lookup_ms\": %.1f, \"checked_in_lookup_lookup_ms\": %.1f, "
              "\"unchecked_ms\": %.1f, \"first_token_equal_lookup_checked\": %s}\n",
              host_ms, lc_ms, lc_lookup_ms, nv_ms, lc_tok == first ? "true" : "false");

  double disk_ms = -1, disk_lookup_ms = -1, raw_ms = -1;
  int32_t disk_tok = -1;
  if (!disk_dir.empty()) {
    std::filesystem::remove_all(disk_dir);
    std::filesystem::create_directories(disk_dir);
    const DiskPageTierOptions options{.path = disk_dir + "/db",
                                      .capacity_bytes = 2 * hit_pages * (pb + 4096),
                                      .page_bytes = pb,
                                      .page_size = ps,
                                      .namespace_key = 42,
                                      .max_queued_bytes = 2 * hit_pages * pb,
                                      .read_arena = arena};
    {
      std::unique_ptr<KvPageTier> disk = Value(OpenDiskPageTier(options));
      for (const PageRecord& r : records) (void)disk->Insert(r);
      (void)WaitForDiskWritesForTesting(*disk, 1200000);
    }
    records.clear();  // free the arena's blocks for the reads
    bench::SyncAndDrop(disk_dir);
    std::unique_ptr<KvPageTier> disk = Value(OpenDiskPageTier(options));
    bench::SyncAndDrop(disk_dir);
    std::tie(disk_ms, disk_tok) = serve_from(std::move(disk), &disk_lookup_ms);
    // Ceiling: the same bytes as one plain file in the same folder, read cold in 8 MiB blocks.
    const std::string raw = disk_dir + "/raw.bin";
    {
      std::ofstream f(raw, std::ios::binary);
      std::vector<char> block(8 << 20, 'x');
      for (int64_t left = hit_pages * pb; left > 0; left -= block.size()) {
        f.write(block.data(), std::min<int64_t>(left, block.size()));
      }
    }
    bench::SyncAndDrop(disk_dir);
    const auto r0 = Clock::now();
    const int fd = open(raw.c_str(), O_RDONLY);
    std::vector<char> block(8 << 20);
    int64_t total = 0;
    for (ssize_t got; (got = read(fd, block.data(), block.size())) > 0;) total += got;
    close(fd);
    raw_ms = Ms(r0);
    std::printf("{\"bench\": \"disk_raw\", \"bytes\": %lld, \"read_cold_gbps\": %.2f, "
                "\"disk_tier_read_gbps\": %.2f}\n",
                static_cast<long long>(total), Gbps(total, raw_ms),
                Gbps(static_cast<double>(hit_pages) * pb, disk_lookup_ms));
    std::filesystem::remove_all(disk_dir);
  }
  std::printf(
      "{\"bench\": \"ttft\", \"model\": \"llama3-8b-shape\", \"context\": %lld, \"chunk\": %lld, "
      "\"hit_pages\": %lld, \"recompute_ms\": %.1f, \"host_ms\": %.1f, \"host_lookup_ms\": %.1f, "
      "\"host_ratio\": %.3f, \"host_noverify_ms\": %.1f, \"host_noverify_lookup_ms\": %.1f, "
      "\"host_noverify_ratio\": %.3f, \"first_token_equal_host_noverify\": %s, \"disk_ms\": %.1f, \"disk_lookup_ms\": %.1f, \"disk_ratio\": %.3f, "
      "\"raw_read_ms\": %.1f, \"first_token_equal_host\": %s, \"first_token_equal_disk\": %s}\n",
      static_cast<long long>(context), static_cast<long long>(chunk),
      static_cast<long long>(hit_pages), recompute_ms, host_ms, host_lookup_ms,
      host_ms / recompute_ms, nv_ms, nv_lookup_ms, nv_ms / recompute_ms,
      nv_tok == first ? "true" : "false", disk_ms, disk_lookup_ms, disk_ms / recompute_ms, raw_ms,
      host_tok == first ? "true" : "false",
      disk_dir.empty() ? "null" : (disk_tok == first ? "true" : "false"));
  std::fflush(stdout);
}

// `mode` takes the write-back apart: "copies" (the reads only, records dropped when done),
// "crc" (+ checksums on another thread, no inserts), "inline" (checksums and inserts on this
// thread), "full" (checksums on another thread, then inserts: what the engine does),
// "full_before" (as full, the reads started just before the next forward rather than right
// after the step ran, as the engine does; measured no better).
void Decode(CudaModelRunner& runner, int64_t B, int64_t context, int64_t steps,
            const std::string& mode) {
  CudaKvStorage& kv = static_cast<CudaKvStorage&>(runner.kv_storage());
  const int64_t ps = kv.layout().page_size;
  BlockPool pool(runner.num_pages());
  const int64_t rounds = 6;  // alternating: off, on, off, on, ...
  const int64_t total = context + rounds * steps + 8;
  std::vector<BlockTable> tables(B, BlockTable(ps));
  for (auto& t : tables) t.Append(*pool.Allocate(t.BlocksNeeded(total)));
  StepResult r;
  std::vector<int32_t> last(B);
  for (int64_t b = 0; b < B; ++b) {  // prefill, one prompt per step
    std::vector<int32_t> toks(context);
    for (int64_t i = 0; i < context; ++i) toks[i] = static_cast<int32_t>((b * 7919 + i) % 128000);
    StepPlan plan;
    plan.seqs.push_back(Seq(b, toks, 0, tables[b]));
    CHECK_OK(runner.Execute(plan, r));
    last[b] = r.tokens[0];
  }
  // Write-back as the engine does it: per step, as many pages as the batch fills per step on
  // average (B / page size, at least 1) read to pinned blocks beside the next steps (no fence);
  // a finished read gets its checksums computed on another thread, then its pages go into a
  // full host tier (each insert pushes the oldest page out, checking its checksum).
  const int64_t per_step = std::max<int64_t>(1, B / ps);
  const int64_t pb = kv.page_bytes();
  std::shared_ptr<PageArena> arena = Value(MakePinnedPageArena(pb, 96 * per_step));
  std::unique_ptr<KvPageTier> host = MakeHostPageTier(
      {.capacity_bytes = 64 * per_step * (pb + ps * 4 + 64), .page_bytes = pb, .page_size = ps,
       .arena = arena, .verify = HostPageTierOptions::Verify::kByConsumer});
  const bool after_forward = mode != "full_before";
  struct Pending {
    KvStorage::TransferId id = 0;
    std::vector<PageRecord> records;
    std::future<void> checksums;
  };
  std::deque<Pending> pending;
  std::vector<double> off, on;
  int64_t pos = context, moved = 0, inserted = 0;
  uint64_t next_hash = 1;
  auto collect = [&](bool wait) {
    for (Pending& d : pending) {
      if (d.checksums.valid()) continue;
      if (d.id == 0) break;  // not started yet
      if (wait) {
        CHECK_OK(kv.WaitTransfer(d.id));
      } else if (!kv.TransferDone(d.id)) {
        break;
      }
      if (mode == "copies" || mode == "inline") {  // deferred: runs in get(), on this thread
        d.checksums = std::async(std::launch::deferred, [r = &d.records, &mode] {
          if (mode == "inline") {
            for (PageRecord& x : *r) x.crc = PageChecksumOf(x);
          }
        });
      } else {
        d.checksums = std::async(std::launch::async, [r = &d.records] {
          for (PageRecord& x : *r) x.crc = PageChecksumOf(x);
        });
      }
    }
    while (!pending.empty() && pending.front().checksums.valid() &&
           (wait || pending.front().checksums.wait_for(std::chrono::seconds(0)) !=
                        std::future_status::timeout)) {
      pending.front().checksums.get();  // deferred: runs here, on this thread
      if (mode == "full" || mode == "full_before" || mode == "inline") {
        for (PageRecord& r : pending.front().records) {
          inserted += host->Insert(std::move(r)).accepted;
        }
      }
      pending.pop_front();
    }
  };
  for (int64_t round = 0; round < rounds; ++round) {
    const bool writeback = round % 2 == 1;
    std::vector<int32_t> read_pages;  // filled by the last step, read before the next forward
    std::vector<std::byte*> read_dst;
    auto start_reads = [&] {
      if (read_pages.empty()) return;
      pending.back().id = Value(kv.StartReadPages(read_pages, read_dst, /*fence_compute=*/false));
      read_pages.clear();
      read_dst.clear();
    };
    for (int64_t s = 0; s < steps; ++s, ++pos) {
      const auto t0 = Clock::now();
      collect(/*wait=*/false);
      if (!after_forward) start_reads();  // full_before: just before the next forward
      StepPlan plan;
      for (int64_t b = 0; b < B; ++b) plan.seqs.push_back(Seq(b, {&last[b], 1}, pos, tables[b]));
      CHECK_OK(runner.Execute(plan, r));
      for (int64_t b = 0; b < B; ++b) last[b] = r.tokens[b];
      if (writeback) {  // the pages this step filled (as registered blocks)
        Pending d;
        std::vector<int32_t> pages;
        std::vector<std::byte*> dst;
        for (int64_t k = 0; k < per_step; ++k) {
          const int64_t b = (moved + k) % B;
          pages.push_back(tables[b].blocks()[(moved / B + k) % (context / ps)]);
          PageRecord rec;
          rec.hash = next_hash++;
          rec.parent_hash = rec.hash + 1000000;
          rec.tokens.assign(ps, 7);
          rec.bytes = PageBytes::Allocate(pb, arena.get());
          dst.push_back(rec.bytes.mutable_data());
          d.records.push_back(std::move(rec));
        }
        moved += per_step;
        read_pages = std::move(pages);
        read_dst = std::move(dst);
        pending.push_back(std::move(d));
        if (after_forward) start_reads();  // the engine's order: right after the step ran
      }
      if (s >= 4) (writeback ? on : off).push_back(Ms(t0));
    }
    start_reads();
    collect(/*wait=*/true);
  }
  const double m_off = Median(off), m_on = Median(on);
  std::printf(
      "{\"bench\": \"decode\", \"mode\": \"%s\", \"model\": \"llama3-8b-shape\", \"batch\": %lld, "
      "\"context\": %lld, \"writeback_pages_per_step\": %lld, \"writeback_gbps\": %.2f, "
      "\"host_tier_inserts\": %lld, \"host_tier_pushed_out\": %lld, "
      "\"ms_per_step_off\": %.3f, \"ms_per_step_on\": %.3f, \"slowdown\": %.4f}\n",
      mode.c_str(), static_cast<long long>(B), static_cast<long long>(context),
      static_cast<long long>(per_step), Gbps(static_cast<double>(per_step) * pb, m_on),
      static_cast<long long>(inserted), static_cast<long long>(host->stats().evicted_pages),
      m_off, m_on, m_on / m_off - 1);
  std::fflush(stdout);
}

int Run(int argc, char** argv) {
  int64_t pages = 1024, context = 32768, chunk = 8192, batch = 64, decode_context = 2048,
          steps = 48;
  std::string disk_dir = "/tmp/longview_kv_tier_gpu_bench";
  std::string parts = "moves,ttft,decode";
  CLI::App app("kv_tier_gpu_bench");
  app.add_option("--pages", pages);
  app.add_option("--context", context);
  app.add_option("--chunk", chunk, "prefill chunk (tokens per step)");
  app.add_option("--disk-dir", disk_dir, "empty: no disk tier");
  app.add_option("--batch", batch);
  app.add_option("--decode-context", decode_context);
  app.add_option("--steps", steps);
  app.add_option("--parts", parts);
  std::string writeback_mode = "full";
  app.add_option("--writeback", writeback_mode,
                 "decode: copies | crc | inline | full | full_before (reads started just before "
                 "the next forward instead of right after the step, as the engine does)")
      ->check(CLI::IsMember({"copies", "crc", "inline", "full", "full_before"}));
  CLI11_PARSE(app, argc, argv);
  ModelConfig cfg = Llama3_8BShape();
  cfg.max_position_embeddings = std::max<int64_t>(cfg.max_position_embeddings, context + 64);
  CudaRunnerOptions o;
  o.max_num_seqs = batch;
  o.max_num_tokens = chunk;
  o.gpu_memory_utilization = 0.9;
  const auto t0 = Clock::now();
  std::unique_ptr<CudaModelRunner> runner =
      Value(CudaModelRunner::Create(cfg, nullptr, o, /*random_seed=*/7));
  std::fprintf(stderr, "model ready in %.1f s: %d KV pages of %lld bytes\n", Ms(t0) / 1e3,
               runner->num_pages(), static_cast<long long>(runner->page_bytes()));
  auto& kv = static_cast<CudaKvStorage&>(runner->kv_storage());
  if (parts.find("moves") != std::string::npos) {
    PageMoves(kv, std::min<int64_t>(pages, runner->num_pages()));
  }
  if (parts.find("ttft") != std::string::npos) Ttft(*runner, context, chunk, disk_dir);
  if (parts.find("decode") != std::string::npos) {
    Decode(*runner, batch, decode_context, steps, writeback_mode);
  }
  return 0;
}

}  // namespace
}  // namespace longview

int main(int argc, char** argv) { return longview::Run(argc, argv); }
