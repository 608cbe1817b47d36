// GPT-2's byte <-> character map: byte-level BPE vocabularies spell every byte as a printable
// character ("Ġ" for a space, "Ċ" for a newline), so token texts are valid Unicode.
//
//   std::string raw = ByteLevelDecode("Ġhello");   // " hello"
//   std::string token = ByteLevelEncode(" hi");     // "Ġhi"
// Thread-safety: pure functions over constant tables.
#pragma once

#include <string>
#include <string_view>

namespace longview::internal {

// The character that stands for byte `b`.
char32_t ByteToChar(unsigned char b);
// The byte that character `c` stands for, or -1 when `c` stands for none.
int CharToByte(char32_t c);

// The raw bytes of a token text, as Hugging Face's ByteLevel decoder gives them: each character
// mapped back to its byte, or, when any character of `token` is not in the map (an added token
// such as "<tool_call>" written with a space or non-Latin letters), the token's own bytes.
std::string ByteLevelDecode(std::string_view token);
// Whether every character of `token` maps to a byte; if so, sets `*bytes`.
bool ByteLevelDecodeStrict(std::string_view token, std::string* bytes);
// The token text that spells raw `bytes`.
std::string ByteLevelEncode(std::string_view bytes);

}  // namespace longview::internal
