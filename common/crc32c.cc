#include "common/crc32c.h"

#include <array>
#include <bit>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define LV_CRC32C_X86 1
#endif

namespace longview {
namespace {

// Bit-reflected polynomial: bit 31 is the coefficient of x^0, bit 0 that of x^31, so
// multiplying by x is a right shift that folds x^32 back in as kPoly.
constexpr uint32_t kPoly = 0x82F63B78u;

constexpr uint32_t MulX(uint32_t a) { return (a >> 1) ^ ((a & 1u) ? kPoly : 0u); }

// a * b mod P, both reflected.
constexpr uint32_t MulMod(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (int i = 0; i < 32; ++i) {
    if (a & (0x80000000u >> i)) product ^= b;
    b = MulX(b);
  }
  return product;
}

// x^n mod P (reflected), by square-and-multiply.
constexpr uint32_t XPowMod(uint64_t n) {
  uint32_t result = 0x80000000u;  // x^0
  uint32_t square = 0x40000000u;  // x^1
  for (; n != 0; n >>= 1) {
    if (n & 1) result = MulMod(result, square);
    square = MulMod(square, square);
  }
  return result;
}

// The hardware path runs three streams of kStreamBytes each and then joins them: the raw CRC
// register after L more zero bytes is the register times x^(8L) mod P, a linear map of its 32
// bits, tabulated here byte by byte (4 lookups instead of running L zero bytes).
constexpr size_t kStreamBytes = 1024;

struct Tables {
  std::array<std::array<uint32_t, 256>, 8> slice{};  // slicing-by-8, portable path
  std::array<std::array<uint32_t, 256>, 4> shift{};  // register * x^(8 * kStreamBytes)
};

constexpr Tables MakeTables() {
  Tables t;
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = MulX(c);
    t.slice[0][i] = c;
  }
  for (int k = 1; k < 8; ++k) {
    for (uint32_t i = 0; i < 256; ++i) {
      const uint32_t prev = t.slice[k - 1][i];
      t.slice[k][i] = (prev >> 8) ^ t.slice[0][prev & 0xFFu];
    }
  }
  const uint32_t x_pow = XPowMod(8 * kStreamBytes);
  for (int k = 0; k < 4; ++k) {
    for (uint32_t i = 0; i < 256; ++i) t.shift[k][i] = MulMod(i << (8 * k), x_pow);
  }
  return t;
}

constexpr Tables kTables = MakeTables();

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

#ifdef LV_CRC32C_X86
inline uint32_t ShiftStream(uint32_t reg) {
  return kTables.shift[0][reg & 0xFFu] ^ kTables.shift[1][(reg >> 8) & 0xFFu] ^
         kTables.shift[2][(reg >> 16) & 0xFFu] ^ kTables.shift[3][reg >> 24];
}
#endif

}  // namespace

namespace crc32c_internal {

uint32_t ExtendPortable(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  const auto& t = kTables.slice;
  uint32_t reg = ~crc;
  for (; n >= 8; p += 8, n -= 8) {
    const uint64_t w = Load64(p);
    const uint32_t lo = static_cast<uint32_t>(w) ^ reg;
    const uint32_t hi = static_cast<uint32_t>(w >> 32);
    reg = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
  }
  for (; n > 0; ++p, --n) reg = (reg >> 8) ^ t[0][(reg ^ *p) & 0xFFu];
  return ~reg;
}

#ifdef LV_CRC32C_X86

bool HasHardwareCrc32c() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}

__attribute__((target("sse4.2"))) uint32_t ExtendHardware(uint32_t crc, const void* data,
                                                          size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t reg = ~crc;
  for (; n > 0 && (reinterpret_cast<uintptr_t>(p) & 7u) != 0; ++p, --n) {
    reg = _mm_crc32_u8(static_cast<uint32_t>(reg), *p);
  }
  // One crc32 has a latency of 3 cycles and a throughput of 1: three independent streams keep
  // the unit busy (~3x a single chain).
  for (; n >= 3 * kStreamBytes; p += 3 * kStreamBytes, n -= 3 * kStreamBytes) {
    uint64_t a = reg, b = 0, c = 0;
    for (size_t i = 0; i < kStreamBytes; i += 8) {
      a = _mm_crc32_u64(a, Load64(p + i));
      b = _mm_crc32_u64(b, Load64(p + kStreamBytes + i));
      c = _mm_crc32_u64(c, Load64(p + 2 * kStreamBytes + i));
    }
    const uint32_t ab = ShiftStream(static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b);
    reg = ShiftStream(ab) ^ static_cast<uint32_t>(c);
  }
  for (; n >= 8; p += 8, n -= 8) reg = _mm_crc32_u64(reg, Load64(p));
  for (; n > 0; ++p, --n) reg = _mm_crc32_u8(static_cast<uint32_t>(reg), *p);
  return ~static_cast<uint32_t>(reg);
}

#else  // not x86: the portable path only.

bool HasHardwareCrc32c() { return false; }
uint32_t ExtendHardware(uint32_t crc, const void* data, size_t n) {
  return ExtendPortable(crc, data, n);
}

#endif

}  // namespace crc32c_internal

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n) {
  static const bool hardware = crc32c_internal::HasHardwareCrc32c();
  return hardware ? crc32c_internal::ExtendHardware(crc, data, n)
                  : crc32c_internal::ExtendPortable(crc, data, n);
}

}  // namespace longview
