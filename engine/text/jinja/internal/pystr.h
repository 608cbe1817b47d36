// Python string semantics on UTF-8 bytes, for the Jinja engine: code points, str.isspace,
// strip / split / splitlines as byte ranges (so callers can keep each byte's provenance), and
// the text forms of floats and strings that Python's str(), repr() and json.dumps produce.
// Case mapping covers ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic, and only where the
// mapped character has the same UTF-8 length (Python maps all of Unicode, "ß" to "SS"): other
// characters keep their case.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace longview::jinja::internal {

using ByteRange = std::pair<size_t, size_t>;

// The code point at s[i] and its length in bytes; an invalid byte decodes as itself, length 1.
size_t DecodeUtf8(std::string_view s, size_t i, char32_t* cp);
void AppendUtf8(std::string* out, char32_t cp);
// Byte offset of each code point, plus s.size() at the end.
std::vector<size_t> CharOffsets(std::string_view s);
size_t CountChars(std::string_view s);

// Python's str.isspace for one code point.
bool IsPySpace(char32_t cp);
// Python's str.strip / lstrip / rstrip: the range that remains. `chars` absent: whitespace.
ByteRange StripRange(std::string_view s, bool left, bool right,
                     const std::optional<std::string_view>& chars);
// Python's str.split(sep, maxsplit): the pieces' ranges. `sep` absent: runs of whitespace.
// REQUIRES: sep, when given, is not empty.
std::vector<ByteRange> SplitRanges(std::string_view s, const std::optional<std::string_view>& sep,
                                   int64_t maxsplit);
// Python's str.rsplit(sep, maxsplit). REQUIRES as SplitRanges.
std::vector<ByteRange> RSplitRanges(std::string_view s, const std::optional<std::string_view>& sep,
                                    int64_t maxsplit);
// Python's str.splitlines(keepends): the lines' ranges (with their line break when keepends).
std::vector<ByteRange> SplitLinesRanges(std::string_view s, bool keepends);

bool IsAsciiAlpha(char c);
char32_t UpperChar(char32_t c);
char32_t LowerChar(char32_t c);
// A letter with case (Python's "cased").
bool IsCased(char32_t c);
enum class CaseMode { kUpper, kLower, kCapitalize, kPyTitle, kJinjaTitle };
// Python's str.upper / lower / capitalize / title, and jinja2's title filter (words start after
// '-', whitespace, '(', '{', '[', '<'). The result has the length of `s`, byte for byte.
std::string ChangeCase(std::string_view s, CaseMode mode);
// Python's str.islower / str.isupper: some cased character, and all of them in that case.
bool IsLowerText(std::string_view s);
bool IsUpperText(std::string_view s);

// Python's repr(float) (and str(float)): shortest round-trip digits, "1.0", "1e+16", "inf".
std::string FloatRepr(double d);
// Python's repr(str): quoted with ' (or " when the text has ' and no "), escapes as Python.
std::string StrRepr(std::string_view s);
// A JSON string literal as Python's json.dumps writes it.
std::string JsonQuote(std::string_view s, bool ensure_ascii);

}  // namespace longview::jinja::internal
