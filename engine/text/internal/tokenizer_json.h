// Reads a Hugging Face tokenizer.json of a byte-level BPE family into the BPE tokenizer:
// model BPE (merges as "a b" strings or [a, b] lists, ignore_merges, byte_fallback, unk),
// added tokens, normalizer NFC / none, pre-tokenizers ByteLevel / Split / Digits / Sequence,
// decoders ByteLevel / ByteFallback / Fuse / Sequence, post-processors ByteLevel /
// TemplateProcessing / Sequence.
//
//   HfTokenizerConfig config;   // from tokenizer_config.json
//   ASSIGN_OR_RETURN(auto tok, LoadTokenizerJson("/models/llama3/tokenizer.json", config));
// Thread-safety: plain functions.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "engine/text/tokenizer.h"

namespace longview::internal {

// What tokenizer_config.json says about special tokens, as transformers 5 reads it.
struct HfTokenizerConfig {
  // Whether the key is present at all: either one makes BOS / EOS follow the flags instead of
  // tokenizer.json's post-processor.
  bool has_add_bos = false;
  bool has_add_eos = false;
  bool add_bos = false;  // null counts as false
  bool add_eos = false;
  std::optional<std::string> bos_token;  // absent or null: none named
  std::optional<std::string> eos_token;
};

// Unimplemented naming the component (and `path`) for what this code does not run;
// InvalidArgument naming `path` for malformed content; NotFound when it cannot be read.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerJson(const std::string& path,
                                                             const HfTokenizerConfig& config);

}  // namespace longview::internal
