#include "engine/text/jinja/internal/lexer.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/text/jinja/internal/pystr.h"

namespace longview::jinja::internal {

LineIndex::LineIndex(std::string_view source) : source_(source) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\n') line_starts_.push_back(i + 1);
  }
}

std::string LineIndex::Describe(size_t offset) const {
  offset = std::min(offset, source_.size());
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  const size_t line = static_cast<size_t>(it - line_starts_.begin());
  const size_t start = *(it - 1);
  const size_t column = CountChars(std::string_view(source_).substr(start, offset - start)) + 1;
  return absl::StrCat("line ", line, ", column ", column);
}

std::string NormalizeSource(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return IsAsciiAlpha(c) || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  Lexer(std::string_view src, const LineIndex& lines) : src_(src), lines_(lines) {}

  absl::StatusOr<std::vector<Token>> Run() {
    while (pos_ < src_.size()) {
      const size_t tag = FindTagStart(pos_);
      if (tag == std::string_view::npos) {
        Emit(TokenType::kData, std::string(src_.substr(pos_)), pos_);
        break;
      }
      const char kind = src_[tag + 1];
      size_t after = tag + 2;
      char sign = 0;
      if (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];
      size_t raw_body = 0;
      const bool raw = kind == '%' && MatchRawBegin(after, &raw_body);
      std::string_view text = src_.substr(pos_, tag - pos_);
      text = StripBeforeTag(text, sign, /*is_variable=*/kind == '{');
      if (!text.empty()) Emit(TokenType::kData, std::string(text), pos_);
      if (raw) {
        RETURN_IF_ERROR(LexRaw(raw_body, tag));
        continue;
      }
      line_starting_ = false;
      if (kind == '#') {
        RETURN_IF_ERROR(SkipComment(after, tag));
        continue;
      }
      Emit(kind == '{' ? TokenType::kVarBegin : TokenType::kBlockBegin, "", tag);
      pos_ = after;
      RETURN_IF_ERROR(LexTag(kind == '{', tag));
    }
    Emit(TokenType::kEof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  absl::Status Error(size_t offset, std::string_view msg) const {
    return absl::InvalidArgumentError(
        absl::StrCat(lines_.Describe(offset), ": ", std::string(msg)));
  }

  void Emit(TokenType type, std::string text, size_t offset) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.offset = offset;
    tokens_.push_back(std::move(t));
  }

  size_t FindTagStart(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string_view::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        return i;
      }
    }
    return std::string_view::npos;
  }

  // Python's \s* (Unicode whitespace) from `i`.
  size_t SkipSpace(size_t i) const {
    char32_t cp;
    while (i < src_.size()) {
      const size_t n = DecodeUtf8(src_, i, &cp);
      if (!IsPySpace(cp)) break;
      i += n;
    }
    return i;
  }

  bool StartsWith(size_t i, std::string_view s) const { return src_.substr(i, s.size()) == s; }

  // jinja2's OptionalLStrip: `-` strips all whitespace before the tag; otherwise, for block and
  // comment tags, lstrip_blocks drops spaces and tabs between the line start and the tag.
  std::string_view StripBeforeTag(std::string_view text, char sign, bool is_variable) const {
    if (sign == '-') {
      return text.substr(0, StripRange(text, false, true, std::nullopt).second);
    }
    if (sign == '+' || is_variable) return text;
    const size_t nl = text.rfind('\n');
    const size_t line_start = nl == std::string_view::npos ? 0 : nl + 1;
    if (line_start == 0 && !line_starting_) return text;
    for (size_t i = line_start; i < text.size(); ++i) {
      if (text[i] != ' ' && text[i] != '\t') return text;
    }
    return text.substr(0, line_start);
  }

  // After "{%" and its sign: `\s*raw\s*(-%}\s*|%})`.
  bool MatchRawBegin(size_t i, size_t* body) const {
    i = SkipSpace(i);
    if (!StartsWith(i, "raw")) return false;
    i = SkipSpace(i + 3);
    if (StartsWith(i, "-%}")) {
      *body = SkipSpace(i + 3);
      return true;
    }
    if (StartsWith(i, "%}")) {
      *body = i + 2;
      return true;
    }
    return false;
  }

  absl::Status LexRaw(size_t body, size_t tag) {
    for (size_t i = src_.find("{%", body); i != std::string_view::npos;
         i = src_.find("{%", i + 1)) {
      size_t j = i + 2;
      char sign = 0;
      if (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) sign = src_[j++];
      j = SkipSpace(j);
      if (!StartsWith(j, "endraw")) continue;
      j = SkipSpace(j + 6);
      size_t end;
      if (StartsWith(j, "+%}")) {
        end = j + 3;
      } else if (StartsWith(j, "-%}")) {
        end = SkipSpace(j + 3);
      } else if (StartsWith(j, "%}")) {
        end = j + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      } else {
        continue;
      }
      line_starting_ = false;
      std::string_view text = StripBeforeTag(src_.substr(body, i - body), sign, false);
      if (!text.empty()) Emit(TokenType::kData, std::string(text), body);
      pos_ = end;
      line_starting_ = end > 0 && src_[end - 1] == '\n';
      return absl::OkStatus();
    }
    return Error(tag, "missing end of raw directive");
  }

  absl::Status SkipComment(size_t from, size_t tag) {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if ((src_[i] == '+' || src_[i] == '-') && StartsWith(i + 1, "#}")) {
        pos_ = src_[i] == '-' ? SkipSpace(i + 3) : i + 3;
      } else if (StartsWith(i, "#}")) {
        pos_ = i + 2;
        if (pos_ < src_.size() && src_[pos_] == '\n') ++pos_;
      } else {
        continue;
      }
      line_starting_ = src_[pos_ - 1] == '\n';
      return absl::OkStatus();
    }
    return Error(tag, "missing end of comment tag");
  }

  // Expression tokens up to the tag's end (which is recognised only outside brackets).
  absl::Status LexTag(bool is_variable, size_t tag) {
    std::vector<char> brackets;
    while (true) {
      const size_t ws_end = SkipSpace(pos_);
      if (ws_end >= src_.size()) {
        return Error(tag, is_variable ? "unexpected end of template, expected '}}'"
                                      : "unexpected end of template, expected '%}'");
      }
      pos_ = ws_end;
      if (brackets.empty() && MatchTagEnd(is_variable)) return absl::OkStatus();
      const char c = src_[pos_];
      if (IsDigit(c)) {
        RETURN_IF_ERROR(LexNumber());
      } else if (IsNameStart(c)) {
        size_t e = pos_;
        while (e < src_.size() && IsNameChar(src_[e])) ++e;
        Emit(TokenType::kName, std::string(src_.substr(pos_, e - pos_)), pos_);
        pos_ = e;
      } else if (c == '\'' || c == '"') {
        RETURN_IF_ERROR(LexString());
      } else {
        RETURN_IF_ERROR(LexOperator(brackets));
      }
    }
  }

  bool MatchTagEnd(bool is_variable) {
    const size_t at = pos_;
    if (is_variable) {
      if (StartsWith(pos_, "-}}")) {
        pos_ = SkipSpace(pos_ + 3);
      } else if (StartsWith(pos_, "}}")) {
        pos_ += 2;
      } else {
        return false;
      }
      Emit(TokenType::kVarEnd, "", at);
    } else {
      if (StartsWith(pos_, "+%}")) {
        pos_ += 3;
      } else if (StartsWith(pos_, "-%}")) {
        pos_ = SkipSpace(pos_ + 3);
      } else if (StartsWith(pos_, "%}")) {
        pos_ += 2;
        if (pos_ < src_.size() && src_[pos_] == '\n') ++pos_;  // trim_blocks
      } else {
        return false;
      }
      Emit(TokenType::kBlockEnd, "", at);
    }
    line_starting_ = src_[pos_ - 1] == '\n';
    return true;
  }

  // Digits with single underscores between them, from `i`; returns the end.
  size_t ScanDigits(size_t i) const {
    if (i >= src_.size() || !IsDigit(src_[i])) return i;
    size_t e = i + 1;
    while (e < src_.size()) {
      if (IsDigit(src_[e])) {
        ++e;
      } else if (src_[e] == '_' && e + 1 < src_.size() && IsDigit(src_[e + 1])) {
        e += 2;
      } else {
        break;
      }
    }
    return e;
  }

  absl::Status LexNumber() {
    const size_t start = pos_;
    size_t e = ScanDigits(pos_);
    bool is_float = false;
    // jinja2's float pattern does not start right after a '.', so `x.0.1` is two lookups.
    const bool after_dot = start > 0 && src_[start - 1] == '.';
    if (!after_dot) {
      if (e + 1 < src_.size() && src_[e] == '.' && IsDigit(src_[e + 1])) {
        e = ScanDigits(e + 1);
        is_float = true;
      }
      if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
        size_t x = e + 1;
        if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
        const size_t xe = ScanDigits(x);
        if (xe > x) {
          e = xe;
          is_float = true;
        }
      }
    }
    std::string digits;
    for (size_t i = start; i < e; ++i) {
      if (src_[i] != '_') digits += src_[i];
    }
    Token t;
    t.offset = start;
    t.text = digits;
    if (is_float) {
      t.type = TokenType::kFloat;
      t.float_value = std::strtod(digits.c_str(), nullptr);
    } else {
      if (digits.size() > 1 && digits[0] == '0' &&
          digits.find_first_not_of('0') != std::string::npos) {
        return Error(start, "leading zeros in integer literals are not allowed");
      }
      errno = 0;
      const long long v = std::strtoll(digits.c_str(), nullptr, 10);
      if (errno == ERANGE) return Error(start, "integer literal too large");
      t.type = TokenType::kInt;
      t.int_value = v;
    }
    tokens_.push_back(std::move(t));
    pos_ = e;
    return absl::OkStatus();
  }

  // A string literal, decoded as jinja2 does (Python's unicode-escape rules).
  absl::Status LexString() {
    const size_t start = pos_;
    const char quote = src_[pos_];
    std::string out;
    size_t i = pos_ + 1;
    while (true) {
      if (i >= src_.size()) return Error(start, "unterminated string literal");
      const char c = src_[i];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++i;
        continue;
      }
      if (i + 1 >= src_.size()) return Error(start, "unterminated string literal");
      const char e = src_[i + 1];
      i += 2;
      switch (e) {
        case '\n':
          break;
        case '\\':
        case '\'':
        case '"':
          out += e;
          break;
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
        case 'u':
        case 'U': {
          const int digits = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          char32_t cp = 0;
          for (int k = 0; k < digits; ++k) {
            const int h = i < src_.size() ? HexValue(src_[i]) : -1;
            if (h < 0)
              return Error(start, absl::StrCat("truncated \\", std::string(1, e),
                                               " escape in string literal"));
            cp = cp * 16 + static_cast<char32_t>(h);
            ++i;
          }
          if (cp > 0x10FFFF) return Error(start, "escape outside the Unicode range");
          AppendUtf8(&out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && i < src_.size() && src_[i] >= '0' && src_[i] <= '7'; ++k) {
              cp = cp * 8 + static_cast<char32_t>(src_[i++] - '0');
            }
            AppendUtf8(&out, cp);
          } else if (e == 'N') {
            return Error(start, "\\N{...} escapes are not supported");
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    Emit(TokenType::kString, std::move(out), start);
    pos_ = i + 1;
    return absl::OkStatus();
  }

  absl::Status LexOperator(std::vector<char>& brackets) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo) {
      if (StartsWith(pos_, op)) {
        Emit(TokenType::kOperator, std::string(op), pos_);
        pos_ += 2;
        return absl::OkStatus();
      }
    }
    const char c = src_[pos_];
    if (std::string_view("+-/*%~[](){}<>=.:|,;").find(c) == std::string_view::npos) {
      return Error(pos_, absl::StrCat("unexpected character '", std::string(1, c), "'"));
    }
    if (c == '(' || c == '[' || c == '{') brackets.push_back(c);
    if (c == ')' || c == ']' || c == '}') {
      const char open = c == ')' ? '(' : (c == ']' ? '[' : '{');
      if (brackets.empty() || brackets.back() != open) {
        return Error(pos_, absl::StrCat("unexpected '", std::string(1, c), "'"));
      }
      brackets.pop_back();
    }
    Emit(TokenType::kOperator, std::string(1, c), pos_);
    ++pos_;
    return absl::OkStatus();
  }

  std::string_view src_;
  const LineIndex& lines_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Lex(std::string_view source, const LineIndex& lines) {
  return Lexer(source, lines).Run();
}

}  // namespace longview::jinja::internal
