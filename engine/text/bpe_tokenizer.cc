#include "engine/text/bpe_tokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/text/internal/bpe_tokenizer_impl.h"
#include "engine/text/internal/regex.h"

namespace longview {
namespace {

constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GGUF's token types (llama.cpp's llama_token_type).
enum TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

absl::StatusOr<internal::PreTokenizerStep> SplitStep(std::string_view pattern) {
  ASSIGN_OR_RETURN(std::unique_ptr<internal::Regex> re, internal::Regex::Compile(pattern));
  return internal::PreTokenizerStep::Split(std::shared_ptr<const internal::Regex>(std::move(re)));
}

// The pre-tokenizer, normalizer and defaults of a family, as its tokenizer.json has them.
absl::Status ApplyFamily(const std::string& pre, internal::BpeTokenizerSpec* spec,
                         bool* default_add_bos) {
  using internal::PreTokenizerStep;
  *default_add_bos = false;
  if (pre == "gpt2") {
    spec->pre_tokenizer = {PreTokenizerStep::ByteLevel(false, /*use_regex=*/true)};
  } else if (pre == "llama-bpe") {
    ASSIGN_OR_RETURN(PreTokenizerStep split, SplitStep(kLlama3Pattern));
    spec->pre_tokenizer = {split, PreTokenizerStep::ByteLevel(false, /*use_regex=*/false)};
    spec->model.ignore_merges = true;
    *default_add_bos = true;
  } else if (pre == "qwen2") {
    ASSIGN_OR_RETURN(PreTokenizerStep split, SplitStep(kQwen2Pattern));
    spec->pre_tokenizer = {split, PreTokenizerStep::ByteLevel(false, /*use_regex=*/false)};
    spec->nfc = true;
  } else if (pre == "smollm") {
    spec->pre_tokenizer = {PreTokenizerStep::Digits(/*individual_digits=*/true),
                           PreTokenizerStep::ByteLevel(false, /*use_regex=*/true)};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown BPE pre-tokenizer \"", pre,
                     "\"; supported: ", absl::StrJoin(SupportedBpePreTokenizers(), ", ")));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> SupportedBpePreTokenizers() {
  return {"gpt2", "llama-bpe", "qwen2", "smollm"};
}

absl::StatusOr<std::unique_ptr<Tokenizer>> MakeBpeTokenizer(const BpeVocabulary& v) {
  const auto num_tokens = static_cast<int32_t>(v.tokens.size());
  if (num_tokens == 0) return absl::InvalidArgumentError("BPE vocabulary has no tokens");
  if (!v.token_types.empty() && v.token_types.size() != v.tokens.size()) {
    return absl::InvalidArgumentError(absl::StrCat("BPE vocabulary has ", v.tokens.size(),
                                                   " tokens but ", v.token_types.size(),
                                                   " token types"));
  }
  for (const auto& [name, id] : {std::pair{"bos_id", v.bos_id}, std::pair{"eos_id", v.eos_id}}) {
    if (id < -1 || id >= num_tokens) {
      return absl::InvalidArgumentError(
          absl::StrCat("BPE vocabulary ", name, " ", id, " is outside [0, ", num_tokens, ")"));
    }
  }
  internal::BpeTokenizerSpec spec;
  bool default_add_bos = false;
  RETURN_IF_ERROR(ApplyFamily(v.pre, &spec, &default_add_bos));
  spec.decode_byte_level = true;
  spec.vocab.reserve(v.tokens.size());
  for (int32_t id = 0; id < num_tokens; ++id) {
    const int32_t type = v.token_types.empty() ? kNormal : v.token_types[id];
    switch (type) {
      case kControl:
      case kUserDefined: {
        internal::AddedTokenSpec added;
        added.content = v.tokens[id];
        added.id = id;
        added.special = type == kControl;
        if (!added.content.empty()) spec.added_tokens.push_back(std::move(added));
        break;
      }
      case kUnknown:
        spec.model.unk_id = id;
        spec.vocab.emplace_back(v.tokens[id], id);
        break;
      case kByte:
        spec.model.byte_fallback = true;
        spec.decode_byte_fallback = true;
        spec.vocab.emplace_back(v.tokens[id], id);
        break;
      case kNormal:
      case kUnused:
        spec.vocab.emplace_back(v.tokens[id], id);
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("BPE vocabulary token ", id, " has unknown type ", type));
    }
  }
  spec.merges.reserve(v.merges.size());
  for (size_t rank = 0; rank < v.merges.size(); ++rank) {
    const std::string& m = v.merges[rank];
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (space == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("BPE merge ", rank, " (\"", m, "\") has no space between its two parts"));
    }
    spec.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  spec.bos_id = v.bos_id;
  spec.eos_id = v.eos_id;
  if (v.add_bos.value_or(default_add_bos) && v.bos_id >= 0) spec.prefix_ids = {v.bos_id};
  if (v.add_eos.value_or(false) && v.eos_id >= 0) spec.suffix_ids = {v.eos_id};
  return internal::MakeBpeTokenizerFromSpec(std::move(spec));
}

}  // namespace longview
