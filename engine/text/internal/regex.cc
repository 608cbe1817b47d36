#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/text/internal/regex.h"

#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "engine/text/internal/utf8.h"

namespace longview::internal {
namespace {

constexpr std::string_view kSpaceClassBody = "\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}";

// One match context and JIT stack per thread: PCRE2's default JIT stack (32 KiB) is small for
// long runs of whitespace under lookahead.
struct ThreadMatchState {
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ThreadMatchState() {
    context = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (context != nullptr && stack != nullptr) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
  }
};

}  // namespace

std::string TranslateOnigPattern(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 32);
  int class_depth = 0;  // inside [...]
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      ++i;
      if (e == 's') {
        if (class_depth > 0) {
          out.append(kSpaceClassBody);
        } else {
          absl::StrAppend(&out, "[", std::string(kSpaceClassBody), "]");
        }
      } else if (e == 'S' && class_depth == 0) {
        absl::StrAppend(&out, "[^", std::string(kSpaceClassBody), "]");
      } else {
        out.push_back('\\');
        out.push_back(e);
      }
      continue;
    }
    if (c == '[') {
      ++class_depth;
      out.push_back(c);
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out.push_back(pattern[++i]);
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out.push_back(pattern[++i]);
      continue;
    }
    if (c == ']' && class_depth > 0) --class_depth;
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(std::string_view pattern) {
  const std::string translated = TranslateOnigPattern(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                    PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat("regex \"", std::string(pattern),
                                                   "\" does not compile at ", offset, ": ",
                                                   reinterpret_cast<const char*>(message)));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT support, matching interprets
  return std::unique_ptr<Regex>(new Regex(std::string(pattern), code));
}

absl::StatusOr<std::unique_ptr<Regex>> Regex::CompileLiteral(std::string_view literal) {
  std::string quoted;
  for (char c : literal) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      absl::StrAppend(&quoted, "\\x{", absl::Hex(b), "}");
    } else {
      quoted.push_back(c);
    }
  }
  return Compile(quoted);
}

Regex::~Regex() { pcre2_code_free(code_); }

bool Regex::FindAll(std::string_view text, std::vector<std::pair<size_t, size_t>>* spans) const {
  thread_local ThreadMatchState state;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
  if (md == nullptr) return false;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  bool ok = true;
  while (pos < text.size()) {
    const int rc =
        pcre2_match(code_, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      ok = false;
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t start = ov[0], end = ov[1];
    if (end > start) {
      spans->emplace_back(start, end);
      pos = end;
    } else if (start < text.size()) {
      // An empty match: Oniguruma's iterator steps over one character.
      pos = start + NextUtf8(text.substr(start)).len;
    } else {
      break;
    }
  }
  pcre2_match_data_free(md);
  return ok;
}

}  // namespace longview::internal
