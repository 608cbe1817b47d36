// A byte-level BPE tokenizer built from in-memory vocabulary data, the way a GGUF file carries
// it (`tokenizer.ggml.*`), for the GPT-2 / Llama 3 / Qwen2 / SmolLM families. Folders with a
// Hugging Face tokenizer.json need none of this: Tokenizer::Load reads them.
//
//   BpeVocabulary v;
//   v.tokens = gguf["tokenizer.ggml.tokens"];           // id -> text, "Ġ"-spelled
//   v.merges = gguf["tokenizer.ggml.merges"];           // "a b", rank order
//   v.token_types = gguf["tokenizer.ggml.token_type"];  // optional
//   v.pre = gguf["tokenizer.ggml.pre"];                 // "llama-bpe", "qwen2", ...
//   v.bos_id = gguf["tokenizer.ggml.bos_token_id"];
//   v.eos_id = gguf["tokenizer.ggml.eos_token_id"];
//   v.add_bos = gguf["tokenizer.ggml.add_bos_token"];   // when the file has it
//   ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, MakeBpeTokenizer(v));
//
// What the fields mean:
// - `tokens[id]` is the token's text in the byte-level spelling (GPT-2's byte -> character map:
//   "Ġ" for a space). Ids are the positions.
// - `merges[rank]` is "a b": two token texts separated by the first space after the first
//   character (llama.cpp's reading). Merges naming texts that are not tokens never apply.
// - `token_types[id]` uses GGUF's numbering: 1 normal, 2 unknown (the <unk> token), 3 control
//   (a special token: split out of Encode's text, only from template text in EncodeRendered,
//   dropped by Decode), 4 user-defined (an added token found anywhere in the text, decoded as
//   text), 5 unused, 6 byte (<0xAB>, for byte fallback). Empty: every token is normal.
// - `pre` picks the pre-tokenizer and normalizer of the family's tokenizer.json:
//     "gpt2"       GPT-2's regex (ByteLevel with use_regex)
//     "llama-bpe"  Llama 3's regex, ignore_merges, BOS added by default
//     "qwen2"      NFC, then Qwen2's regex (single digits)
//     "smollm"     single digits, then GPT-2's regex
// - `add_bos` / `add_eos`: whether Encode(text, add_special=true) adds bos_id / eos_id; when
//   unset, the family's default ("llama-bpe" adds BOS; none adds EOS).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/text/tokenizer.h"

namespace longview {

struct BpeVocabulary {
  std::vector<std::string> tokens;
  std::vector<std::string> merges;
  std::vector<int32_t> token_types;
  std::string pre;
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  std::optional<bool> add_bos;
  std::optional<bool> add_eos;
};

// The names `pre` accepts.
std::vector<std::string> SupportedBpePreTokenizers();

// InvalidArgument naming the field on: an unknown `pre`; token_types not matching tokens in
// length or holding an unknown type; bos_id / eos_id outside the tokens; a merge without a
// space; an empty vocabulary.
absl::StatusOr<std::unique_ptr<Tokenizer>> MakeBpeTokenizer(const BpeVocabulary& vocabulary);

}  // namespace longview
