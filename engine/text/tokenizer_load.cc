// Tokenizer::Load: file checks, tokenizer_config.json, and the adapter from the Abseil-free
// SpmModel (engine/tokenizer.cc) to the Tokenizer interface.
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/text/internal/spm_tokenizer.h"
#include "engine/text/tokenizer.h"

namespace longview {
namespace {

class SpmTokenizer final : public Tokenizer {
 public:
  SpmTokenizer(std::unique_ptr<internal::SpmModel> model, bool add_bos, bool add_eos)
      : model_(std::move(model)),
        control_pieces_(model_->ControlPieces()),
        add_bos_(add_bos),
        add_eos_(add_eos) {}

  std::vector<int32_t> Encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> ids = model_->Encode(text);
    AddSpecial(add_special, ids);
    return ids;
  }
  // Each ordinary segment is encoded on its own, as Hugging Face's Llama tokenizer does around
  // special tokens.
  std::vector<int32_t> EncodeRendered(const RenderedPrompt& prompt,
                                      bool add_special) const override {
    std::vector<int32_t> ids;
    for (const PromptSegment& seg : SplitAtSpecialTokens(prompt, control_pieces_)) {
      if (seg.special_id >= 0) {
        ids.push_back(seg.special_id);
      } else {
        std::vector<int32_t> part = model_->Encode(seg.text);
        ids.insert(ids.end(), part.begin(), part.end());
      }
    }
    AddSpecial(add_special, ids);
    return ids;
  }
  std::string Decode(const std::vector<int32_t>& ids) const override { return model_->Decode(ids); }
  std::string TokenBytes(int32_t id) const override { return model_->TokenBytes(id); }
  int32_t vocab_size() const override { return model_->vocab_size(); }
  int32_t bos_id() const override { return model_->bos_id(); }
  int32_t eos_id() const override { return model_->eos_id(); }
  bool add_bos() const override { return add_bos_; }
  bool add_eos() const override { return add_eos_; }
  bool strips_leading_space() const override { return model_->strips_leading_space(); }

 private:
  void AddSpecial(bool add_special, std::vector<int32_t>& ids) const {
    if (add_special && add_bos_ && model_->bos_id() >= 0) {
      ids.insert(ids.begin(), model_->bos_id());
    }
    if (add_special && add_eos_ && model_->eos_id() >= 0) ids.push_back(model_->eos_id());
  }

  std::unique_ptr<internal::SpmModel> model_;
  std::vector<std::pair<std::string, int32_t>> control_pieces_;
  bool add_bos_;
  bool add_eos_;
};

struct SpecialTokenConfig {
  bool add_bos = true;
  bool add_eos = false;
};

// Reads one boolean flag; absent or null keeps the default.
absl::Status ReadFlag(const nlohmann::json& config, const char* key, const std::string& path,
                      bool* value) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": \"", key, "\" must be a boolean, got ", it->dump()));
  }
  *value = it->get<bool>();
  return absl::OkStatus();
}

absl::StatusOr<SpecialTokenConfig> ReadTokenizerConfig(const std::string& path) {
  SpecialTokenConfig result;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return result;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  nlohmann::json config = nlohmann::json::parse(buffer.str(), /*cb=*/nullptr,
                                                /*allow_exceptions=*/false);
  if (config.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed JSON in ", path));
  }
  if (!config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected a JSON object"));
  }
  RETURN_IF_ERROR(ReadFlag(config, "add_bos_token", path, &result.add_bos));
  RETURN_IF_ERROR(ReadFlag(config, "add_eos_token", path, &result.add_eos));
  return result;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& dir) {
  const std::string model_path = (std::filesystem::path(dir) / "tokenizer.model").string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model_path, ec)) {
    return absl::NotFoundError(absl::StrCat("tokenizer model not found: ", model_path));
  }
  ASSIGN_OR_RETURN(
      SpecialTokenConfig config,
      ReadTokenizerConfig((std::filesystem::path(dir) / "tokenizer_config.json").string()));
  std::string error;
  std::unique_ptr<internal::SpmModel> model = internal::SpmModel::Load(model_path, &error);
  if (model == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load sentencepiece model ", model_path, ": ", error));
  }
  return std::unique_ptr<Tokenizer>(
      std::make_unique<SpmTokenizer>(std::move(model), config.add_bos, config.add_eos));
}

}  // namespace longview
