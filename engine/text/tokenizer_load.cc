// Tokenizer::Load: which file to read (tokenizer.json before tokenizer.model),
// tokenizer_config.json, and the adapter from the Abseil-free SpmModel (engine/tokenizer.cc) to
// the Tokenizer interface.
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
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
#include "engine/text/internal/tokenizer_json.h"
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

// tokenizer_config.json as a JSON object; an empty object when the file is absent.
absl::StatusOr<nlohmann::json> ReadConfigFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return nlohmann::json::object();
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
  return config;
}

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

// A special token named in the config: a string, an AddedToken object ({"content": ...}) or
// null / absent (none).
absl::StatusOr<std::optional<std::string>> ReadTokenName(const nlohmann::json& config,
                                                         const char* key, const std::string& path) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  if (it->is_object()) {
    auto content = it->find("content");
    if (content != it->end() && content->is_string()) {
      return std::optional<std::string>(content->get<std::string>());
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": \"", key, "\" must be a string or {\"content\": ...}, got ", it->dump()));
}

absl::StatusOr<internal::HfTokenizerConfig> ReadHfConfig(const nlohmann::json& config,
                                                         const std::string& path) {
  internal::HfTokenizerConfig result;
  result.has_add_bos = config.contains("add_bos_token");
  result.has_add_eos = config.contains("add_eos_token");
  RETURN_IF_ERROR(ReadFlag(config, "add_bos_token", path, &result.add_bos));
  RETURN_IF_ERROR(ReadFlag(config, "add_eos_token", path, &result.add_eos));
  ASSIGN_OR_RETURN(result.bos_token, ReadTokenName(config, "bos_token", path));
  ASSIGN_OR_RETURN(result.eos_token, ReadTokenName(config, "eos_token", path));
  return result;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencepiece(const std::string& model_path,
                                                             const nlohmann::json& config,
                                                             const std::string& config_path) {
  bool add_bos = true;
  bool add_eos = false;
  RETURN_IF_ERROR(ReadFlag(config, "add_bos_token", config_path, &add_bos));
  RETURN_IF_ERROR(ReadFlag(config, "add_eos_token", config_path, &add_eos));
  std::string error;
  std::unique_ptr<internal::SpmModel> model = internal::SpmModel::Load(model_path, &error);
  if (model == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load sentencepiece model ", model_path, ": ", error));
  }
  return std::unique_ptr<Tokenizer>(
      std::make_unique<SpmTokenizer>(std::move(model), add_bos, add_eos));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& dir) {
  const std::filesystem::path folder(dir);
  const std::string json_path = (folder / "tokenizer.json").string();
  const std::string model_path = (folder / "tokenizer.model").string();
  const std::string config_path = (folder / "tokenizer_config.json").string();
  std::error_code ec;
  const bool has_json = std::filesystem::is_regular_file(json_path, ec);
  const bool has_model = std::filesystem::is_regular_file(model_path, ec);
  if (!has_json && !has_model) {
    return absl::NotFoundError(
        absl::StrCat("tokenizer not found: neither ", json_path, " nor ", model_path));
  }
  ASSIGN_OR_RETURN(nlohmann::json config, ReadConfigFile(config_path));
  if (has_json) {
    ASSIGN_OR_RETURN(internal::HfTokenizerConfig hf_config, ReadHfConfig(config, config_path));
    absl::StatusOr<std::unique_ptr<Tokenizer>> tok =
        internal::LoadTokenizerJson(json_path, hf_config);
    // A tokenizer.json of another kind (a Unigram model, Metaspace pieces) gives way to the
    // sentencepiece model beside it.
    if (tok.ok() || !has_model || tok.status().code() != absl::StatusCode::kUnimplemented) {
      return tok;
    }
  }
  return LoadSentencepiece(model_path, config, config_path);
}

}  // namespace longview
