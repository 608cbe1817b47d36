// HostKvStorage, the CPU backend's KvStorage: page copies, whole-page transfers to and from host
// buffers, state slots, and errors naming the bad index (nothing copied then).
#include "kvcache/host_kv_storage.h"

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace longview {
namespace {

const KvLayout kLayout{.num_layers = 2, .num_kv_heads = 1, .head_dim = 2, .page_size = 3};

void Fill(HostKvStorage& kv, int32_t page, float base) {
  for (int64_t i = 0; i < kLayout.PageElements(); ++i) kv.Page(page)[i] = base + i;
}

TEST(HostKvStorageTest, CopiesPagesInOrder) {
  HostKvStorage kv(kLayout, 4);
  EXPECT_EQ(kv.page_bytes(), kLayout.PageElements() * 4);
  Fill(kv, 0, 100);
  Fill(kv, 1, 200);
  // 0 -> 2, then 2 -> 3 reads the first copy's result.
  ASSERT_TRUE(kv.CopyPages(std::vector<PageCopy>{{0, 2}, {2, 3}, {1, 0}}).ok());
  EXPECT_EQ(kv.Page(3)[5], 105);
  EXPECT_EQ(kv.Page(2)[0], 100);
  EXPECT_EQ(kv.Page(0)[1], 201);
}

TEST(HostKvStorageTest, CopiesTokenSlotsInEveryLayerInOrder) {
  HostKvStorage kv(kLayout, 3);
  Fill(kv, 0, 100);
  Fill(kv, 1, 200);
  Fill(kv, 2, 300);
  const std::vector<float> page2(kv.Page(2), kv.Page(2) + kLayout.PageElements());
  // (page 1, slot 2) -> (page 0, slot 0), then (page 0, slot 0) -> (page 0, slot 1).
  ASSERT_TRUE(kv.CopySlots(std::vector<SlotCopy>{{1, 2, 0, 0}, {0, 0, 0, 1}}).ok());
  for (int64_t l = 0; l < kLayout.num_layers; ++l) {
    for (int kind : {KvLayout::kKey, KvLayout::kValue}) {
      for (int64_t e = 0; e < kLayout.TokenStride(); ++e) {
        const float src = 200 + kLayout.Offset(l, kind, 2, 0) + e;
        EXPECT_EQ(kv.Page(0)[kLayout.Offset(l, kind, 0, 0) + e], src);
        EXPECT_EQ(kv.Page(0)[kLayout.Offset(l, kind, 1, 0) + e], src);
        // The other slots are untouched.
        EXPECT_EQ(kv.Page(0)[kLayout.Offset(l, kind, 2, 0) + e],
                  100 + kLayout.Offset(l, kind, 2, 0) + e);
      }
    }
  }
  EXPECT_EQ(std::vector<float>(kv.Page(2), kv.Page(2) + kLayout.PageElements()), page2);
  absl::Status s = kv.CopySlots(std::vector<SlotCopy>{{0, 0, 1, 3}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("(page 1, slot 3)"), std::string::npos) << s;
}

TEST(HostKvStorageTest, BadIndexIsAnErrorAndCopiesNothing) {
  HostKvStorage kv(kLayout, 2);
  Fill(kv, 0, 1);
  Fill(kv, 1, 50);
  absl::Status s = kv.CopyPages(std::vector<PageCopy>{{0, 1}, {1, 2}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("1 -> 2"), std::string::npos) << s;
  EXPECT_EQ(kv.Page(1)[0], 50);  // the valid first copy did not run either
  std::vector<std::byte> buf(kv.page_bytes());
  EXPECT_EQ(kv.ReadPages(std::vector<int32_t>{-1}, buf).code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::byte> small(kv.page_bytes() - 1);
  EXPECT_EQ(kv.ReadPages(std::vector<int32_t>{0}, small).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HostKvStorageTest, PagesRoundTripThroughHostBuffers) {
  HostKvStorage a(kLayout, 3), b(kLayout, 3);
  Fill(a, 0, 7);
  Fill(a, 2, 900);
  std::vector<std::byte> buf(2 * a.page_bytes());
  ASSERT_TRUE(a.ReadPages(std::vector<int32_t>{2, 0}, buf).ok());
  ASSERT_TRUE(b.WritePages(std::vector<int32_t>{1, 2}, buf).ok());
  EXPECT_EQ(std::memcmp(b.Page(1), a.Page(2), a.page_bytes()), 0);
  EXPECT_EQ(std::memcmp(b.Page(2), a.Page(0), a.page_bytes()), 0);
}

TEST(HostKvStorageTest, StateSlotsCopyAndClear) {
  HostKvStorage kv(kLayout, 1, /*num_state_slots=*/3, /*state_bytes=*/16);
  EXPECT_EQ(kv.num_state_slots(), 3);
  std::memset(kv.State(0), 0xAB, 16);
  ASSERT_TRUE(kv.CopyStates(std::vector<StateCopy>{{0, 2}}).ok());
  EXPECT_EQ(static_cast<unsigned char>(kv.State(2)[15]), 0xAB);
  ASSERT_TRUE(kv.ClearStates(std::vector<int32_t>{0}).ok());
  EXPECT_EQ(static_cast<unsigned char>(kv.State(0)[3]), 0);
  EXPECT_EQ(static_cast<unsigned char>(kv.State(2)[3]), 0xAB);
  EXPECT_EQ(kv.CopyStates(std::vector<StateCopy>{{0, 3}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(kv.ClearStates(std::vector<int32_t>{3}).code(), absl::StatusCode::kInvalidArgument);
}

// The asynchronous transfer API's base implementation (synchronous: complete on return), with
// one host buffer per page, as the engine loop's demotions and promotions use it.
TEST(HostKvStorageTest, PerPageTransfersRoundTrip) {
  HostKvStorage a(kLayout, 3), b(kLayout, 3);
  Fill(a, 0, 10);
  Fill(a, 2, 30);
  std::vector<std::byte> p0(a.page_bytes()), p2(a.page_bytes());
  std::vector<std::byte*> dst = {p2.data(), p0.data()};
  absl::StatusOr<KvStorage::TransferId> read = a.StartReadPages(std::vector<int32_t>{2, 0}, dst);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_TRUE(a.WaitTransfer(*read).ok());
  EXPECT_TRUE(a.TransferDone(*read));
  std::vector<const std::byte*> src = {p0.data(), p2.data()};
  absl::StatusOr<KvStorage::TransferId> write =
      b.StartWritePages(std::vector<int32_t>{1, 0}, src);
  ASSERT_TRUE(write.ok()) << write.status();
  ASSERT_TRUE(b.WaitTransfer(*write).ok());
  EXPECT_EQ(std::memcmp(b.Page(1), a.Page(0), a.page_bytes()), 0);
  EXPECT_EQ(std::memcmp(b.Page(0), a.Page(2), a.page_bytes()), 0);
}

TEST(HostKvStorageTest, PerPageTransferErrorsNameTheProblemAndMoveNothing) {
  HostKvStorage kv(kLayout, 2);
  Fill(kv, 0, 5);
  std::vector<std::byte> buf(kv.page_bytes(), std::byte{0x7F});
  std::vector<std::byte*> one = {buf.data()};
  std::vector<std::byte*> two = {buf.data(), buf.data()};
  absl::StatusOr<KvStorage::TransferId> r = kv.StartReadPages(std::vector<int32_t>{0}, two);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("2 host buffers for 1 pages"), std::string::npos)
      << r.status();
  std::vector<std::byte*> null_one = {nullptr};
  r = kv.StartReadPages(std::vector<int32_t>{0}, null_one);
  EXPECT_NE(r.status().message().find("null"), std::string::npos) << r.status();
  r = kv.StartReadPages(std::vector<int32_t>{0, 2}, two);
  EXPECT_NE(r.status().message().find("page 2 out of range"), std::string::npos) << r.status();
  EXPECT_EQ(buf[0], std::byte{0x7F});  // the valid first page was not read either
  std::vector<const std::byte*> src = {buf.data()};
  r = kv.StartWritePages(std::vector<int32_t>{-1}, src);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(kv.Page(0)[0], 5);
}

}  // namespace
}  // namespace longview
