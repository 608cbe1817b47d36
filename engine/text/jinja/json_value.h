// JSON (nlohmann::ordered_json, so objects keep the client's key order, as Python's json.loads
// does) to Jinja values, every string and scalar marked as client or template input.
//
//   ASSIGN_OR_RETURN(jinja::Value kwargs, jinja::ValueFromJson(json, /*client=*/true));
// Thread-safety: pure function.
#pragma once

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "engine/text/jinja/value.h"

namespace longview::jinja {

// Objects become dicts, arrays lists; integers that do not fit int64 become floats.
// InvalidArgument for JSON nested deeper than `max_depth`.
absl::StatusOr<Value> ValueFromJson(const nlohmann::ordered_json& json, bool client,
                                    int max_depth = 64);

}  // namespace longview::jinja
