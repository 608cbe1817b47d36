// Sentencepiece tokenizer of a model folder (`tokenizer.model`), with BOS/EOS handling as
// `tokenizer_config.json` says (`add_bos_token`, default true; `add_eos_token`, default false).
// sentencepiece's header clashes with Abseil's, so it is confined to tokenizer.cc.
//
//   ASSIGN_OR_RETURN(auto tok, Tokenizer::Load("/models/llama"));
//   std::vector<int32_t> ids = tok->Encode("Hello");   // BOS prepended if configured
//   std::string text = tok->Decode(ids);               // control tokens dropped
// Thread-safety: const methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "engine/text/rendered_prompt.h"

namespace longview {

class Tokenizer {
 public:
  // Loads `dir/tokenizer.model` and, when present, `dir/tokenizer_config.json`.
  // NotFound / InvalidArgument naming the file on any problem.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& dir);
  virtual ~Tokenizer() = default;

  // Encodes text; adds BOS / EOS as configured when `add_special` is true. Special tokens
  // written in the text are treated as the tokenizer's own rules say (sentencepiece: ordinary
  // text; Hugging Face tokenizer.json: added tokens are split out of any text).
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special = true) const = 0;
  // Encodes a chat template's output: the text of a special token (a control or added token)
  // becomes that token only where it lies wholly inside one of `prompt.special_ranges`; all other
  // text is encoded as ordinary text, never as special tokens. Adds BOS / EOS as configured when
  // `add_special` is true.
  virtual std::vector<int32_t> EncodeRendered(const RenderedPrompt& prompt,
                                              bool add_special) const = 0;
  // Decodes ids to text exactly as sentencepiece does (control tokens dropped). Ids outside
  // [0, vocab_size) are skipped.
  virtual std::string Decode(const std::vector<int32_t>& ids) const = 0;
  // The raw bytes a token contributes when it follows other tokens: byte-fallback pieces
  // (<0xAB>) become that byte, "▁" becomes a space, control tokens become "", <unk> becomes
  // sentencepiece's unk surface (" ⁇ "), ids outside [0, vocab_size) become "". Used by the
  // incremental detokenizer.
  virtual std::string TokenBytes(int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
  virtual bool add_bos() const = 0;
  virtual bool add_eos() const = 0;
  // Whether sentencepiece strips the leading space of a decoded text (add_dummy_prefix).
  virtual bool strips_leading_space() const = 0;
};

// Turns a growing list of generated token ids into text pieces that are always whole UTF-8
// sequences: bytes of an incomplete multi-byte character are held back until it completes.
// The concatenation of everything emitted equals the decode of the generated tokens as a
// continuation of the prompt.
//
//   IncrementalDetokenizer detok(*tok, /*at_text_start=*/false);
//   for (int32_t id : stream) std::cout << detok.Push(id);
//   std::cout << detok.Flush();   // any dangling invalid bytes become U+FFFD
class IncrementalDetokenizer {
 public:
  // `at_text_start`: true when no prompt text precedes the tokens (then the leading space
  // sentencepiece adds is stripped, as Decode does).
  IncrementalDetokenizer(const Tokenizer& tokenizer, bool at_text_start);
  // Returns the newly completed text (possibly empty). Like Decode: ids outside
  // [0, vocab_size) are ignored, and a control token ends a run of byte pieces (an unfinished
  // character before it becomes U+FFFD).
  std::string Push(int32_t id);
  // Returns what is still held back, with invalid bytes replaced by U+FFFD.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool at_start_;
  std::string pending_;  // bytes of an incomplete UTF-8 sequence
  // While at_start_: the tokens pushed so far that added bytes but no text (a "▁" piece whose
  // space was stripped), to ask Decode what the next piece turns into at the text's start.
  std::vector<int32_t> start_ids_;
};

}  // namespace longview
