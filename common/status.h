// Status helpers used across module boundaries.
//
// Abseil 20220623 has no public status macros, so the two we need live here, once.
//
//   absl::StatusOr<int> Parse(std::string_view s);
//   absl::Status Use() {
//     ASSIGN_OR_RETURN(int v, Parse("4"));
//     RETURN_IF_ERROR(Check(v));
//     return absl::OkStatus();
//   }
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LV_CONCAT_INNER_(a, b) a##b
#define LV_CONCAT_(a, b) LV_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status lv_status_ = (expr);                \
    if (!lv_status_.ok()) return lv_status_;           \
  } while (0)

// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status, else declares/assigns
// `lhs` from the value.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(LV_CONCAT_(lv_statusor_, __LINE__), lhs, rexpr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                           \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()
