#include "server/kv_tiers_setup.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace longview {
namespace {

// FNV-1a, 64 bits: a fingerprint, not a checksum (pages carry their own CRC).
class Fingerprint {
 public:
  void Add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 0x100000001b3ull;
  }
  void Add(const std::string& s) {
    Add(s.data(), s.size());
    Add(uint64_t{s.size()});
  }
  void Add(uint64_t v) { Add(&v, sizeof(v)); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

absl::Status AddFile(Fingerprint& f, const std::filesystem::path& path) {
  constexpr int64_t kSample = 1 << 20;
  std::error_code ec;
  const int64_t size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  if (ec) return absl::NotFoundError(absl::StrCat(path.string(), ": ", ec.message()));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot be read"));
  f.Add(path.filename().string());
  f.Add(static_cast<uint64_t>(size));
  std::vector<char> buf(static_cast<size_t>(std::min(size, kSample)));
  in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
  f.Add(buf.data(), static_cast<size_t>(in.gcount()));
  if (size > kSample) {
    in.clear();
    in.seekg(std::max(kSample, size - kSample));
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    f.Add(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uint64_t> KvNamespaceKey(const LoadedModel& lm, const KvTiersConfig& config,
                                        const KvStorage& storage) {
  Fingerprint f;
  f.Add(std::string("longview-kv-pages-v1"));
  if (lm.is_gguf()) {
    RETURN_IF_ERROR(AddFile(f, lm.dir));
  } else {
    std::vector<std::filesystem::path> files;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(lm.dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name == "config.json" || name.ends_with(".safetensors")) files.push_back(e.path());
    }
    if (ec) return absl::NotFoundError(absl::StrCat(lm.dir, ": ", ec.message()));
    std::sort(files.begin(), files.end());
    for (const auto& p : files) RETURN_IF_ERROR(AddFile(f, p));
  }
  f.Add(config.device);
  f.Add(config.dtype);
  const KvLayout& l = storage.layout();
  f.Add(static_cast<uint64_t>(l.num_layers));
  f.Add(static_cast<uint64_t>(l.num_kv_heads));
  f.Add(static_cast<uint64_t>(l.head_dim));
  f.Add(static_cast<uint64_t>(l.page_size));
  f.Add(static_cast<uint64_t>(storage.page_bytes()));
  return f.value();
}

absl::StatusOr<std::shared_ptr<TieredKvStore>> OpenKvTiers(const KvTiersConfig& config,
                                                           const LoadedModel& lm,
                                                           const KvStorage& storage) {
  if (!(config.host_memory_gib >= 0) || !std::isfinite(config.host_memory_gib)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kv-host-memory-gib must be a non-negative number of GiB, got ", config.host_memory_gib));
  }
  if (config.disk_path.empty() && config.disk_gib != 0) {
    return absl::InvalidArgumentError("--kv-disk-gib needs --kv-disk-path");
  }
  if (!config.disk_path.empty() && (!(config.disk_gib > 0) || !std::isfinite(config.disk_gib))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kv-disk-gib must be a positive number of GiB with --kv-disk-path, got ",
        config.disk_gib));
  }
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  std::vector<std::unique_ptr<KvPageTier>> tiers;
  const int64_t page_bytes = storage.page_bytes();
  const int64_t page_size = storage.layout().page_size;
  const int64_t host_capacity = static_cast<int64_t>(config.host_memory_gib * kGiB);
  std::shared_ptr<PageArena> arena;
  if (config.make_arena && (host_capacity > 0 || !config.disk_path.empty())) {
    // The host tier's pages (it counts page_bytes + tokens + a fixed overhead per page, so this
    // is a slight over-estimate) plus the staging headroom, pinned once, up front.
    const int64_t blocks = host_capacity / page_bytes + KvStagingPages(page_bytes);
    absl::StatusOr<std::shared_ptr<PageArena>> made = config.make_arena(page_bytes, blocks);
    if (!made.ok()) {
      return absl::Status(made.status().code(),
                          absl::StrCat("--kv-host-memory-gib ", config.host_memory_gib, ": ",
                                       made.status().message()));
    }
    arena = *std::move(made);
    std::cerr << absl::StrFormat("longview: KV tiers' host memory: %.2f GiB %s (%d pages)\n",
                                 static_cast<double>(arena->slab_bytes()) / kGiB, arena->kind(),
                                 arena->num_blocks());
  }
  if (host_capacity > 0) {
    tiers.push_back(MakeHostPageTier({.capacity_bytes = host_capacity,
                                      .page_bytes = page_bytes,
                                      .page_size = page_size,
                                      .arena = arena,
                                      // Checked by the engine beside the copy to the device.
                                      .verify = config.host_verify
                                                    ? HostPageTierOptions::Verify::kByConsumer
                                                    : HostPageTierOptions::Verify::kNever}));
  }
  if (!config.disk_path.empty()) {
    ASSIGN_OR_RETURN(uint64_t ns, KvNamespaceKey(lm, config, storage));
    absl::StatusOr<std::unique_ptr<KvPageTier>> disk =
        OpenDiskPageTier({.path = config.disk_path,
                          .capacity_bytes = static_cast<int64_t>(config.disk_gib * kGiB),
                          .page_bytes = page_bytes,
                          .page_size = page_size,
                          .namespace_key = ns,
                          .read_arena = arena});
    if (!disk.ok()) {
      return absl::Status(disk.status().code(),
                          absl::StrCat("--kv-disk-path ", config.disk_path, ": ",
                                       disk.status().message()));
    }
    std::cerr << absl::StrFormat(
        "longview: KV disk tier %s (%.1f GiB, namespace %016x): %d pages of this model found\n",
        config.disk_path, config.disk_gib, ns, (*disk)->stats().pages);
    tiers.push_back(std::move(*disk));
  }
  if (tiers.empty()) return std::shared_ptr<TieredKvStore>();
  if (config.host_memory_gib > 0) {
    std::cerr << absl::StrFormat("longview: KV host tier %.2f GiB (%d pages of %d bytes)\n",
                                 config.host_memory_gib,
                                 static_cast<int64_t>(config.host_memory_gib * kGiB) / page_bytes,
                                 page_bytes);
  }
  return std::make_shared<TieredKvStore>(std::move(tiers), std::move(arena));
}

int64_t KvStagingPages(int64_t page_bytes) {
  // 512 MiB: the disk writer's queue (256 MiB) plus as much again for reads and staging.
  return std::max<int64_t>(16, (int64_t{512} << 20) / std::max<int64_t>(page_bytes, 1));
}

}  // namespace longview
