#include "engine/text/internal/tokenizer_json.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/text/internal/bpe_tokenizer_impl.h"
#include "engine/text/internal/regex.h"

namespace longview::internal {
namespace {

using json = nlohmann::json;

// Reads one tokenizer.json; each error names the file and the component.
class SpecReader {
 public:
  explicit SpecReader(std::string path) : path_(std::move(path)) {}

  absl::Status Read(const json& root, BpeTokenizerSpec* spec) {
    if (!root.is_object()) return Invalid("expected a JSON object");
    RETURN_IF_ERROR(ReadModel(Field(root, "model"), spec));
    RETURN_IF_ERROR(ReadAddedTokens(Field(root, "added_tokens"), spec));
    RETURN_IF_ERROR(ReadNormalizer(Field(root, "normalizer"), spec));
    RETURN_IF_ERROR(ReadPreTokenizer(Field(root, "pre_tokenizer"), spec));
    RETURN_IF_ERROR(ReadDecoder(Field(root, "decoder"), spec));
    RETURN_IF_ERROR(ReadPostProcessor(Field(root, "post_processor"), spec));
    return absl::OkStatus();
  }

 private:
  static const json& Field(const json& obj, const char* key) {
    static const json null_value;
    if (!obj.is_object()) return null_value;
    auto it = obj.find(key);
    return it == obj.end() ? null_value : *it;
  }
  static std::string Type(const json& obj) {
    const json& t = Field(obj, "type");
    return t.is_string() ? t.get<std::string>() : std::string();
  }
  absl::Status Invalid(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", what));
  }
  absl::Status Unsupported(const std::string& what) const {
    return absl::UnimplementedError(absl::StrCat(path_, ": unsupported ", what));
  }
  absl::StatusOr<bool> Bool(const json& obj, const char* key, bool fallback) const {
    const json& v = Field(obj, key);
    if (v.is_null()) return fallback;
    if (!v.is_boolean()) return Invalid(absl::StrCat("\"", key, "\" must be a boolean"));
    return v.get<bool>();
  }

  absl::Status ReadModel(const json& model, BpeTokenizerSpec* spec) {
    if (!model.is_object()) return Invalid("no \"model\" object");
    const std::string type = Type(model);
    if (type != "BPE" && !(type.empty() && model.contains("merges"))) {
      return Unsupported(absl::StrCat("model type \"", type, "\" (only BPE)"));
    }
    const json& vocab = Field(model, "vocab");
    if (!vocab.is_object()) return Invalid("model.vocab must be an object of token -> id");
    spec->vocab.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      if (!it.value().is_number_integer()) {
        return Invalid(absl::StrCat("model.vocab[\"", it.key(), "\"] is not an integer id"));
      }
      spec->vocab.emplace_back(it.key(), it.value().get<int32_t>());
    }
    const json& merges = Field(model, "merges");
    if (!merges.is_array()) return Invalid("model.merges must be an array");
    spec->merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const json& m = merges[i];
      if (m.is_string()) {
        // The legacy form: exactly two texts separated by one space.
        std::vector<std::string> parts = absl::StrSplit(m.get<std::string>(), ' ');
        if (parts.size() != 2) return Invalid(absl::StrCat("model.merges[", i, "] is not \"a b\""));
        spec->merges.emplace_back(std::move(parts[0]), std::move(parts[1]));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        spec->merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        return Invalid(absl::StrCat("model.merges[", i, "] is neither \"a b\" nor [a, b]"));
      }
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const json& v = Field(model, key);
      if (!v.is_null() && !(v.is_string() && v.get<std::string>().empty())) {
        return Unsupported(absl::StrCat("model.", key));
      }
    }
    const json& dropout = Field(model, "dropout");
    if (!dropout.is_null() && !(dropout.is_number() && dropout.get<double>() == 0.0)) {
      return Unsupported("model.dropout (random merges)");
    }
    ASSIGN_OR_RETURN(spec->model.ignore_merges, Bool(model, "ignore_merges", false));
    ASSIGN_OR_RETURN(spec->model.byte_fallback, Bool(model, "byte_fallback", false));
    ASSIGN_OR_RETURN(spec->model.fuse_unk, Bool(model, "fuse_unk", false));
    const json& unk = Field(model, "unk_token");
    if (unk.is_string()) {
      auto it = vocab.find(unk.get<std::string>());
      if (it != vocab.end()) spec->model.unk_id = it.value().get<int32_t>();
    }
    return absl::OkStatus();
  }

  absl::Status ReadAddedTokens(const json& tokens, BpeTokenizerSpec* spec) {
    if (tokens.is_null()) return absl::OkStatus();
    if (!tokens.is_array()) return Invalid("added_tokens must be an array");
    for (const json& t : tokens) {
      const json& id = Field(t, "id");
      const json& content = Field(t, "content");
      if (!id.is_number_integer() || !content.is_string()) {
        return Invalid("an added token lacks an integer \"id\" or a string \"content\"");
      }
      AddedTokenSpec a;
      a.id = id.get<int32_t>();
      a.content = content.get<std::string>();
      if (a.content.empty()) continue;  // tokenizers ignores these
      ASSIGN_OR_RETURN(a.special, Bool(t, "special", false));
      ASSIGN_OR_RETURN(a.single_word, Bool(t, "single_word", false));
      ASSIGN_OR_RETURN(a.lstrip, Bool(t, "lstrip", false));
      ASSIGN_OR_RETURN(a.rstrip, Bool(t, "rstrip", false));
      ASSIGN_OR_RETURN(a.normalized, Bool(t, "normalized", !a.special));
      spec->added_tokens.push_back(std::move(a));
    }
    return absl::OkStatus();
  }

  absl::Status ReadNormalizer(const json& n, BpeTokenizerSpec* spec) {
    if (n.is_null()) return absl::OkStatus();
    const std::string type = Type(n);
    if (type == "NFC") {
      spec->nfc = true;
      return absl::OkStatus();
    }
    if (type == "Sequence") {
      for (const json& child : Field(n, "normalizers"))
        RETURN_IF_ERROR(ReadNormalizer(child, spec));
      return absl::OkStatus();
    }
    return Unsupported(absl::StrCat("normalizer \"", type, "\""));
  }

  absl::StatusOr<SplitBehavior> Behavior(const json& b) const {
    const std::string s = b.is_string() ? b.get<std::string>() : std::string();
    if (s == "Removed") return SplitBehavior::kRemoved;
    if (s == "Isolated") return SplitBehavior::kIsolated;
    if (s == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
    if (s == "MergedWithNext") return SplitBehavior::kMergedWithNext;
    if (s == "Contiguous") return SplitBehavior::kContiguous;
    return Invalid(absl::StrCat("unknown Split behavior ", b.dump()));
  }

  absl::Status ReadPreTokenizer(const json& p, BpeTokenizerSpec* spec) {
    if (p.is_null()) return absl::OkStatus();
    const std::string type = Type(p);
    if (type == "Sequence") {
      for (const json& child : Field(p, "pretokenizers")) {
        RETURN_IF_ERROR(ReadPreTokenizer(child, spec));
      }
      return absl::OkStatus();
    }
    if (type == "ByteLevel") {
      ASSIGN_OR_RETURN(bool prefix, Bool(p, "add_prefix_space", true));
      ASSIGN_OR_RETURN(bool use_regex, Bool(p, "use_regex", true));
      spec->pre_tokenizer.push_back(PreTokenizerStep::ByteLevel(prefix, use_regex));
      return absl::OkStatus();
    }
    if (type == "Digits") {
      ASSIGN_OR_RETURN(bool individual, Bool(p, "individual_digits", false));
      spec->pre_tokenizer.push_back(PreTokenizerStep::Digits(individual));
      return absl::OkStatus();
    }
    if (type == "Split") {
      const json& pattern = Field(p, "pattern");
      const json& regex = Field(pattern, "Regex");
      const json& literal = Field(pattern, "String");
      absl::StatusOr<std::unique_ptr<Regex>> compiled =
          regex.is_string()     ? Regex::Compile(regex.get<std::string>())
          : literal.is_string() ? Regex::CompileLiteral(literal.get<std::string>())
                                : absl::StatusOr<std::unique_ptr<Regex>>(
                                      Invalid("Split pattern is neither Regex nor String"));
      if (!compiled.ok()) return Invalid(std::string(compiled.status().message()));
      ASSIGN_OR_RETURN(SplitBehavior behavior, Behavior(Field(p, "behavior")));
      ASSIGN_OR_RETURN(bool invert, Bool(p, "invert", false));
      spec->pre_tokenizer.push_back(PreTokenizerStep::Split(
          std::shared_ptr<const Regex>(std::move(compiled).value()), behavior, invert));
      return absl::OkStatus();
    }
    return Unsupported(absl::StrCat("pre-tokenizer \"", type, "\""));
  }

  absl::Status ReadDecoder(const json& d, BpeTokenizerSpec* spec) {
    if (d.is_null()) return Unsupported("missing decoder (tokens joined by spaces)");
    const std::string type = Type(d);
    if (type == "Sequence") {
      for (const json& child : Field(d, "decoders")) RETURN_IF_ERROR(ReadDecoder(child, spec));
      return absl::OkStatus();
    }
    if (type == "ByteLevel") {
      spec->decode_byte_level = true;
      return absl::OkStatus();
    }
    if (type == "ByteFallback") {
      spec->decode_byte_fallback = true;
      return absl::OkStatus();
    }
    if (type == "Fuse") return absl::OkStatus();  // joining is all Decode does anyway
    return Unsupported(absl::StrCat("decoder \"", type, "\""));
  }

  absl::Status ReadPostProcessor(const json& p, BpeTokenizerSpec* spec) {
    if (p.is_null()) return absl::OkStatus();
    const std::string type = Type(p);
    if (type == "ByteLevel") return absl::OkStatus();  // trims offsets only
    if (type == "Sequence") {
      for (const json& child : Field(p, "processors")) {
        RETURN_IF_ERROR(ReadPostProcessor(child, spec));
      }
      return absl::OkStatus();
    }
    if (type != "TemplateProcessing") {
      return Unsupported(absl::StrCat("post-processor \"", type, "\""));
    }
    const json& single = Field(p, "single");
    const json& specials = Field(p, "special_tokens");
    if (!single.is_array()) return Invalid("TemplateProcessing.single must be an array");
    spec->prefix_ids.clear();
    spec->suffix_ids.clear();
    bool after_sequence = false;
    for (const json& item : single) {
      if (item.contains("Sequence")) {
        after_sequence = true;
        continue;
      }
      const json& name = Field(Field(item, "SpecialToken"), "id");
      if (!name.is_string())
        return Invalid("TemplateProcessing item is neither Sequence nor SpecialToken");
      const json& ids = Field(Field(specials, name.get<std::string>().c_str()), "ids");
      if (!ids.is_array()) {
        return Invalid(
            absl::StrCat("TemplateProcessing special token ", name.dump(), " has no ids"));
      }
      for (const json& id : ids) {
        if (!id.is_number_integer()) return Invalid("TemplateProcessing ids must be integers");
        (after_sequence ? spec->suffix_ids : spec->prefix_ids).push_back(id.get<int32_t>());
      }
    }
    return absl::OkStatus();
  }

  std::string path_;
};

// The id of a token named by tokenizer_config.json: an added token's, else the vocabulary's.
int32_t FindToken(const BpeTokenizerSpec& spec, const std::string& text) {
  for (const AddedTokenSpec& t : spec.added_tokens) {
    if (t.content == text) return t.id;
  }
  for (const auto& [vocab_text, id] : spec.vocab) {
    if (vocab_text == text) return id;
  }
  return -1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerJson(const std::string& path,
                                                             const HfTokenizerConfig& config) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  json root = json::parse(buffer.str(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded())
    return absl::InvalidArgumentError(absl::StrCat("malformed JSON in ", path));
  BpeTokenizerSpec spec;
  RETURN_IF_ERROR(SpecReader(path).Read(root, &spec));

  // BOS / EOS: named by tokenizer_config.json, else the template's first / last special token.
  spec.bos_id = config.bos_token ? FindToken(spec, *config.bos_token)
                                 : (spec.prefix_ids.empty() ? -1 : spec.prefix_ids.front());
  spec.eos_id = config.eos_token ? FindToken(spec, *config.eos_token)
                                 : (spec.suffix_ids.empty() ? -1 : spec.suffix_ids.back());
  if (config.has_add_bos || config.has_add_eos) {
    // transformers 5 rebuilds the post-processor from the flags (update_post_processor).
    for (const auto& [flag, token, id] :
         {std::tuple{config.add_bos, config.bos_token, spec.bos_id},
          std::tuple{config.add_eos, config.eos_token, spec.eos_id}}) {
      if (flag && token && id < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": tokenizer_config.json names special token \"", *token,
                         "\", which is not in the vocabulary"));
      }
    }
    spec.prefix_ids.clear();
    spec.suffix_ids.clear();
    if (config.add_bos && spec.bos_id >= 0) spec.prefix_ids.push_back(spec.bos_id);
    if (config.add_eos && spec.eos_id >= 0) spec.suffix_ids.push_back(spec.eos_id);
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = MakeBpeTokenizerFromSpec(std::move(spec));
  if (!tok.ok())
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", tok.status().message()));
  return tok;
}

}  // namespace longview::internal
