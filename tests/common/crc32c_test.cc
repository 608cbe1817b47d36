#include "common/crc32c.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace longview {
namespace {

uint32_t Of(const std::vector<uint8_t>& v) { return Crc32c(v.data(), v.size()); }

TEST(Crc32cTest, KnownVectors) {
  const std::string digits = "123456789";
  EXPECT_EQ(Crc32c(digits.data(), digits.size()), 0xE3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
  EXPECT_EQ(Crc32c("a", 1), 0xC1D04330u);
  // Both implementations, whichever the dispatcher picked.
  EXPECT_EQ(crc32c_internal::ExtendPortable(0, digits.data(), digits.size()), 0xE3069283u);
  if (crc32c_internal::HasHardwareCrc32c()) {
    EXPECT_EQ(crc32c_internal::ExtendHardware(0, digits.data(), digits.size()), 0xE3069283u);
  }
}

// RFC 3720 (iSCSI) appendix B.4.
TEST(Crc32cTest, Rfc3720Patterns) {
  std::vector<uint8_t> v(32, 0x00);
  EXPECT_EQ(Of(v), 0x8A9136AAu);
  v.assign(32, 0xFF);
  EXPECT_EQ(Of(v), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) v[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(Of(v), 0x46DD794Eu);
  for (int i = 0; i < 32; ++i) v[i] = static_cast<uint8_t>(31 - i);
  EXPECT_EQ(Of(v), 0x113FDB5Cu);
  const std::vector<uint8_t> read_pdu = {0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                         0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
                                         0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
                                         0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                         0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(Of(read_pdu), 0xD9963A56u);
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  const std::string s = "The quick brown fox jumps over the lazy dog";
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    const uint32_t head = Crc32c(s.data(), cut);
    EXPECT_EQ(Crc32cExtend(head, s.data() + cut, s.size() - cut), Crc32c(s.data(), s.size()))
        << "cut " << cut;
  }
}

// The hardware path (three streams joined by the shift tables) must agree with the portable
// one at every length and alignment, including lengths just around the 3 KiB stream round.
TEST(Crc32cTest, HardwareMatchesPortableOnRandomData) {
  if (!crc32c_internal::HasHardwareCrc32c()) {
    GTEST_SKIP() << "no SSE4.2 on this CPU: only the portable path runs here";
  }
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  std::vector<uint8_t> buf((1 << 20) + 64);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  std::vector<size_t> lengths = {0, 1, 7, 8, 9, 63, 3071, 3072, 3073, 6143, 6144, 9217, (1 << 20)};
  for (int i = 0; i < 200; ++i) lengths.push_back(rng() % (64 << 10));
  for (size_t len : lengths) {
    for (size_t offset : {0, 1, 3, 7}) {
      const uint32_t init = static_cast<uint32_t>(rng());
      ASSERT_EQ(crc32c_internal::ExtendHardware(init, buf.data() + offset, len),
                crc32c_internal::ExtendPortable(init, buf.data() + offset, len))
          << "length " << len << " offset " << offset;
    }
  }
  // The dispatching entry point agrees too.
  EXPECT_EQ(Crc32c(buf.data(), buf.size()),
            crc32c_internal::ExtendPortable(0, buf.data(), buf.size()));
}

}  // namespace
}  // namespace longview
