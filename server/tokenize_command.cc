#include "server/tokenize_command.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "engine/model/loaded_model.h"
#include "nlohmann/json.hpp"

namespace longview {

std::string AnswerTokenizeLine(const Tokenizer& tok, const std::string& line, int64_t line_no) {
  using nlohmann::json;
  auto error = [&](const std::string& what) {
    return json{{"error", absl::StrCat("line ", line_no, ": ", what)}}.dump();
  };
  json req = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded() || !req.is_object()) return error("not a JSON object");
  if (req.contains("text")) {
    if (!req["text"].is_string()) return error("\"text\" must be a string");
    bool add_special = true;
    if (req.contains("add_special")) {
      if (!req["add_special"].is_boolean()) return error("\"add_special\" must be true or false");
      add_special = req["add_special"].get<bool>();
    }
    return json{{"ids", tok.Encode(req["text"].get<std::string>(), add_special)}}.dump();
  }
  if (req.contains("ids")) {
    const json& ids = req["ids"];
    if (!ids.is_array()) return error("\"ids\" must be a list of token ids");
    std::vector<int32_t> v;
    v.reserve(ids.size());
    for (const json& id : ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
          id.get<int64_t>() >= tok.vocab_size()) {
        return error(absl::StrCat("\"ids\" holds ", id.dump(), ", not a token id in [0, ",
                                  tok.vocab_size(), ")"));
      }
      v.push_back(id.get<int32_t>());
    }
    return json{{"text", tok.Decode(v)}}.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return error("a request has \"text\" (to encode) or \"ids\" (to decode)");
}

int RunTokenize(const std::string& model, std::istream& in, std::ostream& out) {
  auto lm = LoadedModel::LoadWithoutWeights(model);
  if (!lm.ok()) {
    std::cerr << "error: cannot load the tokenizer of " << model << ": " << lm.status().message()
              << "\n";
    return 1;
  }
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    out << AnswerTokenizeLine(*(*lm)->tokenizer, line, n) << '\n' << std::flush;
  }
  return 0;
}

}  // namespace longview
