// Encode throughput of the tokenizer of a model folder (tokenizer.json or tokenizer.model), in
// MB of UTF-8 text per second on one thread, beside Hugging Face `tokenizers` encoding the same
// documents in the same run (tools/bench/tokenizer_peer.py), with a check that both produced
// the same ids.
//
//   build/tools/bench/tokenizer_bench --tokenizer DIR --text FILE [--repeats 5]
//       [--peer ".venv/bin/python tools/bench/tokenizer_peer.py"]
//
// Documents are the text's "\n\n"-separated parts, each encoded without special tokens, as the
// peer does. Prints the median and best of `repeats` passes after one warm-up pass, and Decode's
// throughput over the same ids.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "engine/text/tokenizer.h"

namespace longview {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> Documents(const std::string& text) {
  std::vector<std::string> docs;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t next = text.find("\n\n", pos);
    if (next == std::string::npos) next = text.size();
    if (next > pos) docs.push_back(text.substr(pos, next - pos));
    pos = next + 2;
  }
  return docs;
}

// FNV-1a over the ids, a separator after each document (as tokenizer_peer.py computes it).
std::string Fnv1a(const std::vector<std::vector<int32_t>>& all) {
  uint64_t h = 0xCBF29CE484222325ull;
  auto mix = [&](uint32_t v) {
    h ^= v;
    h *= 0x100000001B3ull;
  };
  for (const auto& ids : all) {
    for (int32_t id : ids) mix(static_cast<uint32_t>(id));
    mix(0xFFFFFFFFu);
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int Main(int argc, char** argv) {
  CLI::App app("tokenizer Encode throughput beside Hugging Face tokenizers");
  std::string dir, text_path, peer;
  int repeats = 5;
  app.add_option("--tokenizer", dir, "model folder with tokenizer.json or tokenizer.model")
      ->required();
  app.add_option("--text", text_path, "UTF-8 text; documents are its \\n\\n-separated parts")
      ->required();
  app.add_option("--repeats", repeats, "timed passes after one warm-up pass");
  app.add_option("--peer", peer, "command running tokenizer_peer.py (empty: no peer)");
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Load(dir);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tok.status().message()).c_str());
    return 1;
  }
  std::ifstream in(text_path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::vector<std::string> docs = Documents(buffer.str());
  size_t num_bytes = 0;
  for (const std::string& d : docs) num_bytes += d.size();
  const double mb = static_cast<double>(num_bytes) / 1e6;

  std::vector<std::vector<int32_t>> ids(docs.size());
  for (size_t i = 0; i < docs.size(); ++i) ids[i] = (*tok)->Encode(docs[i], false);  // warm-up
  std::vector<double> encode_s, decode_s;
  size_t num_tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    for (size_t i = 0; i < docs.size(); ++i) ids[i] = (*tok)->Encode(docs[i], false);
    const auto t1 = Clock::now();
    size_t decoded = 0;
    for (const auto& doc_ids : ids) decoded += (*tok)->Decode(doc_ids).size();
    const auto t2 = Clock::now();
    encode_s.push_back(Seconds(t0, t1));
    decode_s.push_back(Seconds(t1, t2));
    if (decoded == 0) std::printf("(nothing decoded)\n");
  }
  for (const auto& doc_ids : ids) num_tokens += doc_ids.size();
  std::sort(encode_s.begin(), encode_s.end());
  std::sort(decode_s.begin(), decode_s.end());
  const std::string hash = Fnv1a(ids);
  std::printf("text %s: %zu documents, %.2f MB, %zu tokens (%.2f bytes/token), ids fnv1a %s\n",
              text_path.c_str(), docs.size(), mb, num_tokens,
              static_cast<double>(num_bytes) / static_cast<double>(num_tokens), hash.c_str());
  std::printf("%-38s median %7.2f MB/s  best %7.2f MB/s\n", "longview Encode (1 thread)",
              mb / encode_s[encode_s.size() / 2], mb / encode_s.front());
  std::printf("%-38s median %7.2f MB/s  best %7.2f MB/s\n", "longview Decode (1 thread)",
              mb / decode_s[decode_s.size() / 2], mb / decode_s.front());
  if (peer.empty()) return 0;

  const std::string command = peer + " time --tokenizer '" + dir + "' --text '" + text_path +
                              "' --repeats " + std::to_string(repeats);
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    std::fprintf(stderr, "cannot run %s\n", command.c_str());
    return 1;
  }
  std::string out;
  char chunk[4096];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), pipe)) > 0) out.append(chunk, n);
  if (pclose(pipe) != 0) {
    std::fprintf(stderr, "peer failed: %s\n%s", command.c_str(), out.c_str());
    return 1;
  }
  const nlohmann::json p = nlohmann::json::parse(out, nullptr, false);
  if (p.is_discarded()) {
    std::fprintf(stderr, "peer printed no JSON:\n%s", out.c_str());
    return 1;
  }
  const std::string version = p.value("version", "?");
  std::printf("%-38s median %7.2f MB/s  best %7.2f MB/s\n",
              ("tokenizers " + version + " encode (per call)").c_str(),
              p["encode_mb_per_s_median"].get<double>(), p["encode_mb_per_s_best"].get<double>());
  std::printf("%-38s median %7.2f MB/s  best %7.2f MB/s\n",
              ("tokenizers " + version + " encode_batch_fast").c_str(),
              p["batch_mb_per_s_median"].get<double>(), p["batch_mb_per_s_best"].get<double>());
  const bool same = p.value("ids_fnv1a", "") == hash && p.value("tokens", size_t{0}) == num_tokens;
  std::printf("ids: %s (peer %zu tokens, fnv1a %s)\n", same ? "identical" : "DIFFERENT",
              p.value("tokens", size_t{0}), p.value("ids_fnv1a", "").c_str());
  std::printf("longview / tokenizers per call: %.2fx, / encode_batch_fast: %.2fx\n",
              (mb / encode_s[encode_s.size() / 2]) / p["encode_mb_per_s_median"].get<double>(),
              (mb / encode_s[encode_s.size() / 2]) / p["batch_mb_per_s_median"].get<double>());
  return same ? 0 : 2;
}

}  // namespace
}  // namespace longview

int main(int argc, char** argv) { return longview::Main(argc, argv); }
