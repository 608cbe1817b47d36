#include "engine/text/jinja/internal/pystr.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace longview::jinja::internal {

size_t DecodeUtf8(std::string_view s, size_t i, char32_t* cp) {
  const auto b = static_cast<unsigned char>(s[i]);
  size_t len = 0;
  char32_t c = 0;
  if (b < 0x80) {
    *cp = b;
    return 1;
  } else if ((b & 0xE0) == 0xC0) {
    len = 2;
    c = b & 0x1F;
  } else if ((b & 0xF0) == 0xE0) {
    len = 3;
    c = b & 0x0F;
  } else if ((b & 0xF8) == 0xF0) {
    len = 4;
    c = b & 0x07;
  } else {
    *cp = b;
    return 1;
  }
  if (i + len > s.size()) {
    *cp = b;
    return 1;
  }
  for (size_t k = 1; k < len; ++k) {
    const auto cb = static_cast<unsigned char>(s[i + k]);
    if ((cb & 0xC0) != 0x80) {
      *cp = b;
      return 1;
    }
    c = (c << 6) | (cb & 0x3F);
  }
  *cp = c;
  return len;
}

void AppendUtf8(std::string* out, char32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::vector<size_t> CharOffsets(std::string_view s) {
  std::vector<size_t> out;
  char32_t cp;
  for (size_t i = 0; i < s.size(); i += DecodeUtf8(s, i, &cp)) out.push_back(i);
  out.push_back(s.size());
  return out;
}

size_t CountChars(std::string_view s) {
  size_t n = 0;
  char32_t cp;
  for (size_t i = 0; i < s.size(); i += DecodeUtf8(s, i, &cp)) ++n;
  return n;
}

bool IsPySpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

namespace {

bool InChars(char32_t c, const std::optional<std::string_view>& chars) {
  if (!chars) return IsPySpace(c);
  char32_t x = 0;
  for (size_t i = 0; i < chars->size();) {
    i += DecodeUtf8(*chars, i, &x);
    if (x == c) return true;
  }
  return false;
}

// Code point ending at byte `end` (exclusive): its start.
size_t PrevChar(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && end - i < 4 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  char32_t cp;
  return i + DecodeUtf8(s, i, &cp) == end ? i : end - 1;
}

bool IsLineBreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
         c == 0x85 || c == 0x2028 || c == 0x2029;
}

}  // namespace

ByteRange StripRange(std::string_view s, bool left, bool right,
                     const std::optional<std::string_view>& chars) {
  size_t b = 0, e = s.size();
  char32_t cp;
  if (left) {
    while (b < e) {
      size_t n = DecodeUtf8(s, b, &cp);
      if (!InChars(cp, chars)) break;
      b += n;
    }
  }
  if (right) {
    while (e > b) {
      size_t p = PrevChar(s, e);
      DecodeUtf8(s, p, &cp);
      if (!InChars(cp, chars)) break;
      e = p;
    }
  }
  return {b, e};
}

std::vector<ByteRange> SplitRanges(std::string_view s, const std::optional<std::string_view>& sep,
                                   int64_t maxsplit) {
  std::vector<ByteRange> out;
  if (sep) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      size_t hit = s.find(*sep, start);
      if (hit == std::string_view::npos) break;
      out.push_back({start, hit});
      start = hit + sep->size();
    }
    out.push_back({start, s.size()});
    return out;
  }
  size_t i = 0;
  char32_t cp;
  while (true) {
    while (i < s.size()) {  // skip whitespace
      size_t n = DecodeUtf8(s, i, &cp);
      if (!IsPySpace(cp)) break;
      i += n;
    }
    if (i >= s.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      out.push_back({i, s.size()});
      break;
    }
    size_t j = i;
    while (j < s.size()) {
      size_t n = DecodeUtf8(s, j, &cp);
      if (IsPySpace(cp)) break;
      j += n;
    }
    out.push_back({i, j});
    i = j;
  }
  return out;
}

std::vector<ByteRange> RSplitRanges(std::string_view s, const std::optional<std::string_view>& sep,
                                    int64_t maxsplit) {
  std::vector<ByteRange> out;
  if (sep) {
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      size_t hit = s.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      out.push_back({hit + sep->size(), end});
      end = hit;
    }
    out.push_back({0, end});
  } else {
    size_t e = s.size();
    char32_t cp;
    while (true) {
      while (e > 0) {  // skip whitespace
        size_t p = PrevChar(s, e);
        DecodeUtf8(s, p, &cp);
        if (!IsPySpace(cp)) break;
        e = p;
      }
      if (e == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        out.push_back({0, e});
        break;
      }
      size_t b = e;
      while (b > 0) {
        size_t p = PrevChar(s, b);
        DecodeUtf8(s, p, &cp);
        if (IsPySpace(cp)) break;
        b = p;
      }
      out.push_back({b, e});
      e = b;
    }
  }
  return {out.rbegin(), out.rend()};
}

std::vector<ByteRange> SplitLinesRanges(std::string_view s, bool keepends) {
  std::vector<ByteRange> out;
  size_t start = 0, i = 0;
  char32_t cp;
  while (i < s.size()) {
    size_t n = DecodeUtf8(s, i, &cp);
    if (!IsLineBreak(cp)) {
      i += n;
      continue;
    }
    size_t brk = n;
    if (cp == '\r' && i + 1 < s.size() && s[i + 1] == '\n') brk = 2;
    out.push_back({start, keepends ? i + brk : i});
    i += brk;
    start = i;
  }
  if (start < s.size()) out.push_back({start, s.size()});
  return out;
}

bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

char32_t UpperChar(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 0x20;
  if (c == 0xFF) return 0x178;
  if (c == 0xB5) return 0x39C;
  if ((c >= 0x100 && c <= 0x137 && c != 0x130 && c != 0x131) || (c >= 0x14A && c <= 0x177)) {
    return (c & 1) ? c - 1 : c;
  }
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c : c - 1;
  if ((c >= 0x3B1 && c <= 0x3C1) || (c >= 0x3C3 && c <= 0x3CB)) return c - 0x20;
  if (c == 0x3C2) return 0x3A3;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 0x25;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 0x3F;
  if (c >= 0x430 && c <= 0x44F) return c - 0x20;
  if (c >= 0x450 && c <= 0x45F) return c - 0x50;
  return c;
}

char32_t LowerChar(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 0x20;
  if (c == 0x178) return 0xFF;
  if ((c >= 0x100 && c <= 0x137 && c != 0x130 && c != 0x131) || (c >= 0x14A && c <= 0x177)) {
    return (c & 1) ? c : c + 1;
  }
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c + 1 : c;
  if ((c >= 0x391 && c <= 0x3A1) || (c >= 0x3A3 && c <= 0x3AB)) return c + 0x20;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 0x25;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 0x3F;
  if (c >= 0x410 && c <= 0x42F) return c + 0x20;
  if (c >= 0x400 && c <= 0x40F) return c + 0x50;
  return c;
}

bool IsCased(char32_t c) {
  return UpperChar(c) != c || LowerChar(c) != c || c == 0xDF || c == 0x130 || c == 0x131 ||
         c == 0x138 || c == 0x149 || c == 0x17F || c == 0x390 || c == 0x3B0;
}

namespace {
bool AllCasedAre(std::string_view s, bool lower) {
  bool cased = false;
  char32_t c;
  for (size_t i = 0; i < s.size();) {
    i += DecodeUtf8(s, i, &c);
    if (!IsCased(c)) continue;
    cased = true;
    if ((lower ? LowerChar(c) : UpperChar(c)) != c) return false;
  }
  return cased;
}
}  // namespace

bool IsLowerText(std::string_view s) { return AllCasedAre(s, true); }
bool IsUpperText(std::string_view s) { return AllCasedAre(s, false); }

std::string ChangeCase(std::string_view s, CaseMode mode) {
  std::string out;
  out.reserve(s.size());
  bool prev_cased = false;  // kPyTitle: the previous character is cased
  bool word_start = true;   // kJinjaTitle: at the start of a run; kCapitalize: at the start
  char32_t c;
  for (size_t i = 0; i < s.size();) {
    const size_t n = DecodeUtf8(s, i, &c);
    char32_t m = c;
    switch (mode) {
      case CaseMode::kUpper:
        m = UpperChar(c);
        break;
      case CaseMode::kLower:
        m = LowerChar(c);
        break;
      case CaseMode::kCapitalize:
        m = word_start ? UpperChar(c) : LowerChar(c);
        word_start = false;
        break;
      case CaseMode::kPyTitle:
        m = prev_cased ? LowerChar(c) : UpperChar(c);
        prev_cased = IsCased(c);
        break;
      case CaseMode::kJinjaTitle: {
        const bool delim = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || IsPySpace(c);
        m = delim ? c : (word_start ? UpperChar(c) : LowerChar(c));
        word_start = delim;
        break;
      }
    }
    std::string enc;
    AppendUtf8(&enc, m);
    if (m != c && enc.size() == n) {
      out += enc;
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  std::string sign;
  if (!sci.empty() && sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t epos = sci.find('e');
  std::string digits = sci.substr(0, epos);
  const int exp = std::stoi(sci.substr(epos + 1));
  if (digits.size() > 1) digits.erase(1, 1);  // drop the '.'
  std::string out = sign;
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + ebuf;
  }
  if (exp >= 0) {
    const size_t int_digits = static_cast<size_t>(exp) + 1;
    if (digits.size() <= int_digits) {
      out += digits + std::string(int_digits - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, int_digits) + "." + digits.substr(int_digits);
    }
    return out;
  }
  return out + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
}

namespace {

bool IsPrintable(char32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x7F) return true;
  if (c <= 0xA0 || c == 0xAD) return false;
  if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
      (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || (c >= 0xD800 && c <= 0xF8FF) ||
      (c >= 0xFFF9 && c <= 0xFFFB) || c > 0x10FFFF) {
    return false;
  }
  return true;
}

void AppendHexEscape(std::string* out, char prefix, char32_t c, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "\\%c%0*x", prefix, digits, static_cast<unsigned>(c));
  *out += buf;
}

}  // namespace

std::string StrRepr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  char32_t c;
  for (size_t i = 0; i < s.size();) {
    const size_t n = DecodeUtf8(s, i, &c);
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (IsPrintable(c)) {
      out.append(s.substr(i, n));
    } else if (c < 0x100) {
      AppendHexEscape(&out, 'x', c, 2);
    } else if (c < 0x10000) {
      AppendHexEscape(&out, 'u', c, 4);
    } else {
      AppendHexEscape(&out, 'U', c, 8);
    }
    i += n;
  }
  out += quote;
  return out;
}

std::string JsonQuote(std::string_view s, bool ensure_ascii) {
  std::string out = "\"";
  char32_t c;
  for (size_t i = 0; i < s.size();) {
    const size_t n = DecodeUtf8(s, i, &c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          AppendHexEscape(&out, 'u', c, 4);
        } else if (ensure_ascii && c >= 0x80) {
          if (c >= 0x10000) {
            const char32_t v = c - 0x10000;
            AppendHexEscape(&out, 'u', 0xD800 | (v >> 10), 4);
            AppendHexEscape(&out, 'u', 0xDC00 | (v & 0x3FF), 4);
          } else {
            AppendHexEscape(&out, 'u', c, 4);
          }
        } else {
          out.append(s.substr(i, n));
        }
    }
    i += n;
  }
  out += '"';
  return out;
}

}  // namespace longview::jinja::internal
