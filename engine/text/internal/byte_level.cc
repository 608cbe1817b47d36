#include "engine/text/internal/byte_level.h"

#include <array>
#include <cstdint>

#include "engine/text/internal/utf8.h"

namespace longview::internal {
namespace {

struct Tables {
  std::array<char32_t, 256> byte_to_char{};
  std::array<int16_t, 512> char_to_byte{};  // every mapped character is below U+0200
};

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes
// take U+0100 upwards in byte order.
const Tables& GetTables() {
  static const Tables tables = [] {
    Tables t;
    t.char_to_byte.fill(-1);
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      t.byte_to_char[b] = printable(b) ? static_cast<char32_t>(b) : next++;
      t.char_to_byte[t.byte_to_char[b]] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return tables;
}

}  // namespace

char32_t ByteToChar(unsigned char b) { return GetTables().byte_to_char[b]; }

int CharToByte(char32_t c) { return c < 512 ? GetTables().char_to_byte[c] : -1; }

bool ByteLevelDecodeStrict(std::string_view token, std::string* bytes) {
  bytes->clear();
  size_t pos = 0;
  while (pos < token.size()) {
    const Utf8Step step = NextUtf8(token.substr(pos));
    if (step.kind != Utf8Kind::kValid) return false;
    const int b = CharToByte(DecodeUtf8(token.substr(pos), step.len));
    if (b < 0) return false;
    bytes->push_back(static_cast<char>(b));
    pos += step.len;
  }
  return true;
}

std::string ByteLevelDecode(std::string_view token) {
  std::string bytes;
  if (!ByteLevelDecodeStrict(token, &bytes)) bytes.assign(token);
  return bytes;
}

std::string ByteLevelEncode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) AppendUtf8(ByteToChar(static_cast<unsigned char>(c)), &out);
  return out;
}

}  // namespace longview::internal
