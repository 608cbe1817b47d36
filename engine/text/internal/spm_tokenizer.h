// Abseil-free wrapper around sentencepiece, used only by engine/tokenizer_load.cc.
//
// sentencepiece's header declares its own `absl::string_view`, which clashes with Abseil's, so
// the translation unit that includes it (engine/tokenizer.cc) must not see any Abseil header.
// This header is that unit's whole interface: plain C++ types, errors as strings.
//
//   std::string error;
//   std::unique_ptr<SpmModel> model = SpmModel::Load("/models/llama/tokenizer.model", &error);
//   if (model == nullptr) { /* `error` says why */ }
// Thread-safety: const methods are safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}  // namespace sentencepiece

namespace longview::internal {

class SpmModel {
 public:
  // Loads a serialized sentencepiece model. Returns nullptr and sets `*error` (sentencepiece's
  // message) when the file cannot be read or parsed.
  static std::unique_ptr<SpmModel> Load(const std::string& model_path, std::string* error);
  ~SpmModel();

  SpmModel(const SpmModel&) = delete;
  SpmModel& operator=(const SpmModel&) = delete;

  // Plain sentencepiece encoding, no BOS / EOS.
  std::vector<int32_t> Encode(std::string_view text) const;
  // sentencepiece's decoding; ids outside [0, vocab_size) are skipped.
  std::string Decode(const std::vector<int32_t>& ids) const;
  // See Tokenizer::TokenBytes. Returns "" for ids outside [0, vocab_size).
  std::string TokenBytes(int32_t id) const;

  // The text and id of every control piece (<s>, </s>, ...): the special tokens a chat
  // template may write.
  std::vector<std::pair<std::string, int32_t>> ControlPieces() const;

  int32_t vocab_size() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  bool strips_leading_space() const { return strips_leading_space_; }

 private:
  explicit SpmModel(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor);

  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  bool strips_leading_space_ = false;
};

}  // namespace longview::internal
