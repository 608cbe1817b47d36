// Fuzz target: the safetensors reader (engine/model/safetensors.h). The first byte picks what
// the rest is:
//   even: a safetensors file, opened with SafetensorsArchive::OpenFile (from a memfd: no disk);
//   odd:  a model.safetensors.index.json, opened with OpenModelDir in a scratch folder that also
//         holds two valid shards (a.safetensors: "x" F32 [2], "y" BF16 [2, 2]; b.safetensors:
//         "z" F16 [3], "e" F32 [0]), a truncated one (bad.safetensors) and a folder (dir).
//
// Beyond not crashing: errors are InvalidArgument (NotFound for a missing shard), and every
// tensor of an accepted archive has as many bytes as its shape and dtype say, all readable
// (ToFloat32 for the float dtypes, a checksum for the others).
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model/safetensors.h"
#include "fuzz/fuzz_check.h"

namespace {

using longview::DType;
using longview::SafetensorsArchive;
using longview::TensorView;

int memfd = -1;                 // the single-file input
std::string memfd_path;         // /proc/self/fd/N
std::filesystem::path scratch;  // the sharded model folder

// A safetensors file: 8-byte little-endian header length, the header, the data.
std::string SafetensorsBytes(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  return out + header + data;
}

void WriteFileOrDie(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

void RemoveScratch() {
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);
}

void CheckArchive(const SafetensorsArchive& archive) {
  const std::vector<std::string> names = archive.Names();
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) FUZZ_CHECK(names[i - 1] < names[i]);
    const TensorView* t = archive.Find(names[i]);
    FUZZ_CHECK(t != nullptr && t->name == names[i]);
    const int64_t n = t->NumElements();
    FUZZ_CHECK(n >= 0);
    FUZZ_CHECK(static_cast<uint64_t>(n) * longview::DTypeSize(t->dtype) == t->nbytes);
    FUZZ_CHECK(t->nbytes == 0 || t->data != nullptr);
    if (t->dtype == DType::kF32 || t->dtype == DType::kF16 || t->dtype == DType::kBF16) {
      std::vector<float> out(static_cast<size_t>(n));
      FUZZ_CHECK(t->ToFloat32(out.data()).ok());
    } else {
      std::vector<float> out(1);
      FUZZ_CHECK(!t->ToFloat32(out.data()).ok());
      volatile uint8_t sum = 0;
      for (size_t b = 0; b < t->nbytes; ++b) sum = sum + static_cast<uint8_t>(t->data[b]);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  memfd = memfd_create("safetensors_fuzzer", MFD_CLOEXEC);
  if (memfd < 0) {
    std::perror("memfd_create");
    std::exit(1);
  }
  memfd_path = "/proc/self/fd/" + std::to_string(memfd);

  const char* tmp = std::getenv("TMPDIR");
  std::string templ =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/lv_safetensors_fuzzer_XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  scratch = templ;
  std::atexit(RemoveScratch);
  const std::string f32_2(8, '\0'), bf16_4(8, '\x3f'), f16_3(6, '\x3c');
  WriteFileOrDie(scratch / "a.safetensors",
                 SafetensorsBytes(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("y":{"dtype":"BF16","shape":[2,2],"data_offsets":[8,16]}})",
                                  f32_2 + bf16_4));
  WriteFileOrDie(scratch / "b.safetensors",
                 SafetensorsBytes(R"({"__metadata__":{"format":"pt"},)"
                                  R"("z":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},)"
                                  R"("e":{"dtype":"F32","shape":[0],"data_offsets":[6,6]}})",
                                  f16_3));
  WriteFileOrDie(scratch / "bad.safetensors", std::string("\x40\0\0\0\0\0\0\0{", 9));
  std::filesystem::create_directory(scratch / "dir");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    FUZZ_CHECK(ftruncate(memfd, 0) == 0);
    FUZZ_CHECK(pwrite(memfd, input.data(), input.size(), 0) == static_cast<ssize_t>(input.size()));
    absl::StatusOr<std::unique_ptr<SafetensorsArchive>> archive =
        SafetensorsArchive::OpenFile(memfd_path);
    if (!archive.ok()) {
      FUZZ_CHECK(archive.status().code() == absl::StatusCode::kInvalidArgument);
      return 0;
    }
    CheckArchive(**archive);
    return 0;
  }
  WriteFileOrDie(scratch / "model.safetensors.index.json", std::string(input));
  absl::StatusOr<std::unique_ptr<SafetensorsArchive>> archive =
      SafetensorsArchive::OpenModelDir(scratch.string());
  if (!archive.ok()) {
    FUZZ_CHECK(archive.status().code() == absl::StatusCode::kInvalidArgument ||
               archive.status().code() == absl::StatusCode::kNotFound);
    return 0;
  }
  CheckArchive(**archive);
  return 0;
}
