// Cold-read helper shared by the KV tier benchmarks: fdatasync and drop from the page cache
// every file under a folder (posix_fadvise DONTNEED; the guest's cache only; a hypervisor's may
// remain).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace longview::bench {

// Returns the files' total size.
inline int64_t SyncAndDrop(const std::string& dir) {
  namespace fs = std::filesystem;
  int64_t total = 0;
  std::error_code ec;  // files may vanish meanwhile (RocksDB's background compactions)
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    const uintmax_t size = e.file_size(ec);
    if (ec || !e.is_regular_file(ec)) continue;
    total += static_cast<int64_t>(size);
    const int fd = open(e.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    if (fdatasync(fd) != 0) std::perror("fdatasync");
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
  return total;
}

}  // namespace longview::bench
