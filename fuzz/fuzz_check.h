// What the fuzz targets share: FUZZ_CHECK, for the properties a target asserts beyond "does not
// crash" (a failed check aborts, which libFuzzer and the corpus replay report as a crash), and
// SplitRecords, which cuts an input into fields for targets that take more than one value.
//
//   FUZZ_CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
//   std::vector<std::string_view> fields = SplitRecords(input, '\xff');
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

namespace longview::fuzz {

// The pieces of `input` between occurrences of `separator` (empty pieces kept; no separator:
// one piece).
inline std::vector<std::string_view> SplitRecords(std::string_view input, char separator) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t end = input.find(separator, start);
    if (end == std::string_view::npos) {
      out.push_back(input.substr(start));
      return out;
    }
    out.push_back(input.substr(start, end - start));
    start = end + 1;
  }
}

}  // namespace longview::fuzz
