// The tokenizer of a model folder: Hugging Face's `tokenizer.json` (byte-level BPE: GPT-2,
// Llama 3, Qwen2, SmolLM) when present, else sentencepiece's `tokenizer.model`; BOS / EOS as
// `tokenizer_config.json` says. A byte-level BPE tokenizer can also be built from in-memory
// vocabulary data (GGUF metadata): see engine/text/bpe_tokenizer.h. sentencepiece's header
// clashes with Abseil's, so it is confined to tokenizer.cc.
//
//   ASSIGN_OR_RETURN(auto tok, Tokenizer::Load("/models/llama"));
//   std::vector<int32_t> ids = tok->Encode("Hello");   // BOS prepended if configured
//   std::string text = tok->Decode(ids);               // control / special tokens dropped
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
  // Loads `dir/tokenizer.json` when present, else `dir/tokenizer.model`, and, when present,
  // `dir/tokenizer_config.json`. A tokenizer.json this code cannot run (a Unigram or WordPiece
  // model, a normalizer or decoder other than the byte-level families') gives way to a
  // tokenizer.model beside it, and is Unimplemented naming the component without one.
  // NotFound / InvalidArgument naming the file on any other problem.
  //
  // tokenizer_config.json as transformers 5 reads it: sentencepiece takes `add_bos_token`
  // (default true) and `add_eos_token` (default false). For tokenizer.json, `bos_token` /
  // `eos_token` name bos_id() / eos_id(); if either `add_bos_token` or `add_eos_token` is
  // present, the special tokens added are BOS / EOS as those flags say (absent or null: no),
  // replacing tokenizer.json's post-processor; otherwise the post-processor decides.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& dir);
  virtual ~Tokenizer() = default;

  // Encodes text; adds BOS / EOS as configured when `add_special` is true. Special tokens
  // written in the text are treated as the tokenizer's own rules say (sentencepiece: ordinary
  // text; Hugging Face tokenizer.json: added tokens are split out of any text, and bytes that
  // are not valid UTF-8 are encoded as U+FFFD, one per maximal invalid subpart).
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special = true) const = 0;
  // Encodes a chat template's output: the text of a special token (a sentencepiece control
  // token, a tokenizer.json added token marked special) becomes that token only where it lies
  // wholly inside one of `prompt.special_ranges`; all other text is encoded as ordinary text,
  // never as special tokens. Non-special added tokens of a tokenizer.json are ordinary
  // vocabulary and are found anywhere, as transformers does. Adds BOS / EOS as configured when
  // `add_special` is true.
  virtual std::vector<int32_t> EncodeRendered(const RenderedPrompt& prompt,
                                              bool add_special) const = 0;
  // Decodes ids to text exactly as sentencepiece or Hugging Face (skip_special_tokens) does:
  // control / special tokens dropped. Ids outside [0, vocab_size) are skipped.
  virtual std::string Decode(const std::vector<int32_t>& ids) const = 0;
  // The raw bytes a token contributes when it follows other tokens: byte-fallback pieces
  // (<0xAB>) become that byte, "▁" becomes a space, byte-level BPE tokens ("Ġhi") the bytes
  // they spell (" hi"), control / special tokens become "", sentencepiece's <unk> its unk
  // surface (" ⁇ "), ids outside [0, vocab_size) become "". Used by the incremental
  // detokenizer.
  virtual std::string TokenBytes(int32_t id) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
  virtual bool add_bos() const = 0;
  virtual bool add_eos() const = 0;
  // Whether sentencepiece strips the leading space of a decoded text (add_dummy_prefix).
  virtual bool strips_leading_space() const = 0;

  // How Decode joins the TokenBytes of its ids, which the incremental detokenizer mirrors.
  struct DecodeRules {
    // sentencepiece: a control token ends a run of byte pieces (an unfinished character before
    // it becomes U+FFFD). Hugging Face: skipped special tokens leave no trace.
    bool control_token_breaks_bytes = true;
    // sentencepiece replaces each invalid byte with U+FFFD; Hugging Face (Rust's
    // from_utf8_lossy) each maximal invalid subpart.
    bool replace_maximal_subparts = false;
  };
  virtual DecodeRules decode_rules() const { return {}; }
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
  // [0, vocab_size) are ignored, and a control token acts as the tokenizer's decode_rules()
  // say.
  std::string Push(int32_t id);
  // Returns what is still held back, with invalid bytes replaced by U+FFFD.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  const Tokenizer::DecodeRules rules_;
  bool at_start_;
  std::string pending_;  // bytes of an incomplete UTF-8 sequence
  // While at_start_: the tokens pushed so far that added bytes but no text (a "▁" piece whose
  // space was stripped), to ask Decode what the next piece turns into at the text's start.
  std::vector<int32_t> start_ids_;
};

}  // namespace longview
