#include "engine/text/jinja/json_value.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace longview::jinja {
namespace {

absl::StatusOr<Value> Convert(const nlohmann::ordered_json& j, bool client, int depth,
                              int max_depth) {
  if (depth > max_depth) {
    return absl::InvalidArgumentError(
        absl::StrCat("JSON nested more than ", max_depth, " levels deep"));
  }
  auto text = [client](const std::string& s) {
    return client ? Text::Client(s) : Text::Template(s);
  };
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::None(client);
    case nlohmann::ordered_json::value_t::boolean:
      return Value::Bool(j.get<bool>(), client);
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::Int(j.get<int64_t>(), client);
    case nlohmann::ordered_json::value_t::number_unsigned:
      if (j.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
        return Value::Float(static_cast<double>(j.get<uint64_t>()), client);
      }
      return Value::Int(static_cast<int64_t>(j.get<uint64_t>()), client);
    case nlohmann::ordered_json::value_t::number_float:
      return Value::Float(j.get<double>(), client);
    case nlohmann::ordered_json::value_t::string:
      return Value::Str(text(j.get_ref<const std::string&>()));
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& x : j) {
        ASSIGN_OR_RETURN(Value v, Convert(x, client, depth + 1, max_depth));
        items.push_back(std::move(v));
      }
      return Value::List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<Dict>();
      for (const auto& [k, x] : j.items()) {
        ASSIGN_OR_RETURN(Value v, Convert(x, client, depth + 1, max_depth));
        RETURN_IF_ERROR(d->Set(Value::Str(text(k)), std::move(v)));
      }
      return Value::MakeDict(std::move(d));
    }
    default:
      return absl::InvalidArgumentError("unsupported JSON value");
  }
}

}  // namespace

absl::StatusOr<Value> ValueFromJson(const nlohmann::ordered_json& json, bool client,
                                    int max_depth) {
  return Convert(json, client, 0, max_depth);
}

}  // namespace longview::jinja
