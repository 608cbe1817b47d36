// The one translation unit that sees sentencepiece. It must not include any Abseil header
// (directly or through common/status.h / engine/tokenizer.h): sentencepiece declares its own
// `absl::string_view`. engine/tokenizer_load.cc adapts SpmModel to the Tokenizer interface.
#include <sentencepiece_processor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/text/internal/spm_tokenizer.h"

namespace longview::internal {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

std::string ReplaceSpaceSymbol(std::string_view piece) {
  std::string out;
  out.reserve(piece.size());
  size_t pos = 0;
  while (pos < piece.size()) {
    size_t hit = piece.find(kSpaceSymbol, pos);
    if (hit == std::string_view::npos) {
      out.append(piece.substr(pos));
      break;
    }
    out.append(piece.substr(pos, hit - pos));
    out.push_back(' ');
    pos = hit + kSpaceSymbol.size();
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::unique_ptr<SpmModel> SpmModel::Load(const std::string& model_path, std::string* error) {
  auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const sentencepiece::util::Status status = processor->Load(model_path);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  if (processor->GetPieceSize() <= 0) {
    *error = "model has no pieces";
    return nullptr;
  }
  return std::unique_ptr<SpmModel>(new SpmModel(std::move(processor)));
}

SpmModel::SpmModel(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor)
    : processor_(std::move(processor)) {
  // Whether Decode drops the "▁" that starts the first piece (add_dummy_prefix): ask the
  // decoder itself rather than the model proto, whose header Debian does not ship.
  const int num_pieces = processor_->GetPieceSize();
  for (int id = 0; id < num_pieces; ++id) {
    if (processor_->IsControl(id) || processor_->IsUnknown(id) || processor_->IsByte(id) ||
        processor_->IsUnused(id)) {
      continue;
    }
    const std::string& piece = processor_->IdToPiece(id);
    if (piece.size() > kSpaceSymbol.size() && piece.starts_with(kSpaceSymbol)) {
      std::string text;
      if (processor_->Decode(std::vector<int>{id}, &text).ok()) {
        strips_leading_space_ = !text.starts_with(' ');
      }
      break;
    }
  }
}

SpmModel::~SpmModel() = default;

std::vector<int32_t> SpmModel::Encode(std::string_view text) const {
  std::vector<int> ids;
  if (!processor_->Encode(text, &ids).ok()) return {};
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string SpmModel::Decode(const std::vector<int32_t>& ids) const {
  const int32_t size = vocab_size();
  std::vector<int> valid;
  valid.reserve(ids.size());
  for (int32_t id : ids) {
    if (id >= 0 && id < size) valid.push_back(id);
  }
  std::string text;
  if (!processor_->Decode(valid, &text).ok()) return {};
  return text;
}

std::string SpmModel::TokenBytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  if (processor_->IsControl(id)) return {};
  if (processor_->IsUnknown(id)) {
    // sentencepiece renders <unk> as its unk_surface (" ⁇ " by default).
    std::string text;
    if (!processor_->Decode(std::vector<int>{id}, &text).ok()) return {};
    return text;
  }
  const std::string& piece = processor_->IdToPiece(id);
  if (processor_->IsByte(id)) {
    // "<0xAB>"
    if (piece.size() == 6 && piece.starts_with("<0x") && piece.back() == '>') {
      const int hi = HexValue(piece[3]);
      const int lo = HexValue(piece[4]);
      if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
    }
    return {};
  }
  return ReplaceSpaceSymbol(piece);
}

std::vector<std::pair<std::string, int32_t>> SpmModel::ControlPieces() const {
  std::vector<std::pair<std::string, int32_t>> out;
  for (int id = 0; id < processor_->GetPieceSize(); ++id) {
    if (processor_->IsControl(id)) out.emplace_back(processor_->IdToPiece(id), id);
  }
  return out;
}

int32_t SpmModel::vocab_size() const { return processor_->GetPieceSize(); }
int32_t SpmModel::bos_id() const { return processor_->bos_id(); }
int32_t SpmModel::eos_id() const { return processor_->eos_id(); }

}  // namespace longview::internal
