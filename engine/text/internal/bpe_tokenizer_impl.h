// The Tokenizer of byte-level BPE families (GPT-2, Llama 3, Qwen2, SmolLM), assembled from a
// spec that tokenizer.json (tokenizer_json.cc) or GGUF-style metadata (bpe_tokenizer.cc) fills.
// The pipeline is that of Hugging Face `tokenizers`: added tokens split out of the text,
// normalization, pre-tokenization, the BPE model, then the post-processor's special tokens.
//
//   BpeTokenizerSpec spec = ...;
//   ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, MakeBpeTokenizerFromSpec(std::move(spec)));
// Thread-safety: the tokenizer's const methods may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "engine/text/internal/added_tokens.h"
#include "engine/text/internal/bpe_model.h"
#include "engine/text/internal/pre_tokenizer.h"
#include "engine/text/tokenizer.h"

namespace longview::internal {

struct BpeTokenizerSpec {
  // The model's vocabulary (texts in its own spelling, "Ġ" for a space when byte-level) and
  // merges in rank order. `model.byte_level` is set from the pre-tokenizer.
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  BpeModelOptions model;
  std::vector<AddedTokenSpec> added_tokens;
  bool nfc = false;  // the normalizer: NFC or none
  std::vector<PreTokenizerStep> pre_tokenizer;
  // The decoder, token by token: ByteLevel maps characters back to bytes; ByteFallback turns
  // <0xAB> tokens into their byte.
  bool decode_byte_level = false;
  bool decode_byte_fallback = false;
  // The post-processor's template for one sequence: ids before and after the text.
  std::vector<int32_t> prefix_ids;
  std::vector<int32_t> suffix_ids;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
};

// InvalidArgument when the spec is inconsistent (duplicate ids, a pre-tokenizer regex missing).
absl::StatusOr<std::unique_ptr<Tokenizer>> MakeBpeTokenizerFromSpec(BpeTokenizerSpec spec);

}  // namespace longview::internal
