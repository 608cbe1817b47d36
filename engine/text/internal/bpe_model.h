// The BPE model of Hugging Face `tokenizers` (models/bpe): a word's symbols merged pair by
// pair, lowest merge rank first and leftmost among equals, with ignore_merges (a word that is
// itself in the vocabulary is one token), byte fallback (<0xAB> tokens for characters not in
// the vocabulary) and an unknown token (optionally fused over a run).
//
// In byte-level mode the model's alphabet is bytes: vocabulary texts are turned back into the
// raw bytes they spell (GPT-2's map), so words are encoded straight from the text's bytes
// instead of first being respelled as "Ġ"-style characters.
//
//   BpeModelOptions options;
//   options.byte_level = true;
//   ASSIGN_OR_RETURN(BpeModel model, BpeModel::Build(vocab, merges, options));
//   std::vector<int32_t> ids;
//   model.Encode(" hello", &ids);
// Thread-safety: const methods may run concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/status.h"

namespace longview::internal {

struct BpeModelOptions {
  bool byte_level = false;
  bool ignore_merges = false;
  bool byte_fallback = false;
  bool fuse_unk = false;
  int32_t unk_id = -1;  // -1: characters without a token are dropped, as tokenizers does
};

class BpeModel {
 public:
  // `vocab`: token text (in the vocabulary's spelling) and id. `merges`: pairs of token texts in
  // rank order; a merge whose parts or result are not in the vocabulary never applies (GGUF
  // files may carry such merges). InvalidArgument on a duplicated id.
  static absl::StatusOr<BpeModel> Build(
      const std::vector<std::pair<std::string, int32_t>>& vocab,
      const std::vector<std::pair<std::string, std::string>>& merges,
      const BpeModelOptions& options);

  // Appends the ids of one pre-tokenized word (valid UTF-8, non-empty).
  void Encode(std::string_view word, std::vector<int32_t>* ids) const;

  int32_t TokenId(std::string_view key) const;  // by model key (raw bytes in byte-level mode)

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool removed;
  };

  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Merge* FindMerge(int32_t a, int32_t b) const;
  // The symbols a word starts as: one per byte (byte-level) or character, with byte fallback
  // and <unk> as tokenizers applies them.
  void InitialSymbols(std::string_view word, std::vector<Symbol>* symbols) const;
  void MergeAll(std::vector<Symbol>* symbols) const;

  BpeModelOptions options_;
  absl::flat_hash_map<std::string, int32_t> vocab_;  // model key -> id
  absl::flat_hash_map<uint64_t, Merge> merges_;
  int32_t byte_ids_[256];      // byte-level: the token of each single byte, or -1
  int32_t fallback_ids_[256];  // byte fallback: the <0xAB> token of each byte, or -1
};

}  // namespace longview::internal
