// longview's version, reported by `longview --version`, `GET /version` and gRPC ListModels.
#pragma once

namespace longview {

inline constexpr char kVersion[] = "0.5.0";

}  // namespace longview
