// The fused q rotation of PagedKvAppend (KvAppendArgs::q) against the two kernels it replaces
// in a decode step, RotateRows then PagedKvAppend: q rows and pages bit for bit equal, for both
// dtypes and head dims, fused QKV rows, some rows without rotation and padding slots.
#include <random>
#include <vector>

#include "kernels/cpu/rope.h"
#include "kernels/cuda/decode_attention/rope_tables.h"
#include "kernels/cuda/kv_append/paged_kv_append.h"
#include "kernels/cuda/rope/rope.h"
#include "tests/gpu/gpu_test_util.h"

namespace longview::cuda {
namespace {

TEST(KvAppendRopeGpu, FusedEqualsRotateRowsThenAppend) {
  std::mt19937_64 rng(Seed() + 41);
  for (DType t : kDTypes) {
    for (int D : {64, 128}) {
      const int num_q_heads = 6, num_kv_heads = 2, page_size = 16, num_pages = 9;
      const int num_tokens = 37, num_q_rows = 29;
      const int64_t q_dim = num_q_heads * D, kv_dim = num_kv_heads * D;
      const int64_t row = q_dim + 2 * kv_dim + 8;  // fused [q | k | v] plus padding
      const int64_t page_elems = 2 * 2 * page_size * kv_dim;  // 2 layers
      auto qkv = RandomBits(static_cast<size_t>(num_tokens) * row, t, rng, 1.0);
      std::vector<int32_t> pos(num_tokens);
      std::vector<int64_t> slots(num_tokens);
      std::uniform_int_distribution<int32_t> pd(0, (1 << 20) - 1);
      for (int i = 0; i < num_tokens; ++i) {
        pos[i] = pd(rng);
        slots[i] = i % 7 == 3 ? -1 : (i * 5) % (num_pages * page_size);
      }
      const RopeTablesHost tables =
          BuildRopeTables(cpu::InvFrequencies({.head_dim = D, .theta = 500000.0}), 1 << 20);
      DeviceBuffer d1(qkv.size() * 2), d2(qkv.size() * 2), p1(num_pages * page_elems * 2),
          p2(num_pages * page_elems * 2), dpos(num_tokens * 4), dslots(num_tokens * 8),
          dlo(tables.lo.size() * 4), dhi(tables.hi.size() * 4);
      CUDA_OK(Upload(d1, qkv));
      CUDA_OK(Upload(d2, qkv));
      CUDA_OK(Upload(dpos, pos));
      CUDA_OK(Upload(dslots, slots));
      CUDA_OK(Upload(dlo, tables.lo));
      CUDA_OK(Upload(dhi, tables.hi));
      CUDA_OK(cudaMemset(p1.get(), 0x5A, num_pages * page_elems * 2));
      CUDA_OK(cudaMemset(p2.get(), 0x5A, num_pages * page_elems * 2));
      auto append = [&](DeviceBuffer& src, DeviceBuffer& pages) {
        char* base = src.as<char>();
        return KvAppendArgs{.dtype = t, .num_tokens = num_tokens, .num_kv_heads = num_kv_heads,
                            .head_dim = D, .page_size = page_size, .k = base + q_dim * 2,
                            .v = base + (q_dim + kv_dim) * 2, .slot_mapping = dslots.as<int64_t>(),
                            .pages = pages.get(), .page_stride = page_elems,
                            .k_offset = 2 * page_size * kv_dim,
                            .v_offset = 3 * page_size * kv_dim, .k_row_stride = row,
                            .v_row_stride = row};
      };
      // Separate: rotate the first num_q_rows rows, then append.
      CUDA_OK(RotateRows({.dtype = t, .num_rows = num_q_rows, .num_heads = num_q_heads,
                          .head_dim = D, .row_stride = row, .x = d1.get(),
                          .positions = dpos.as<int32_t>(), .rope_lo = dlo.as<float>(),
                          .rope_hi = dhi.as<float>(), .rope_hi_rows = tables.num_hi_rows},
                         nullptr));
      CUDA_OK(PagedKvAppend(append(d1, p1), nullptr));
      // Fused.
      KvAppendArgs fused = append(d2, p2);
      fused.q = d2.get();
      fused.num_q_heads = num_q_heads;
      fused.q_row_stride = row;
      fused.num_q_rows = num_q_rows;
      fused.q_positions = dpos.as<int32_t>();
      fused.rope_lo = dlo.as<float>();
      fused.rope_hi = dhi.as<float>();
      fused.rope_hi_rows = tables.num_hi_rows;
      CUDA_OK(PagedKvAppend(fused, nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      std::vector<uint16_t> q1(qkv.size()), q2(qkv.size()), g1(num_pages * page_elems),
          g2(num_pages * page_elems);
      CUDA_OK(Download(q1, d1));
      CUDA_OK(Download(q2, d2));
      CUDA_OK(Download(g1, p1));
      CUDA_OK(Download(g2, p2));
      int64_t q_diff = 0, page_diff = 0, rotated = 0;
      for (size_t i = 0; i < q1.size(); ++i) {
        q_diff += q1[i] != q2[i];
        rotated += q2[i] != qkv[i];
      }
      for (size_t i = 0; i < g1.size(); ++i) page_diff += g1[i] != g2[i];
      const bool pass = q_diff == 0 && page_diff == 0 && rotated > 0;
      std::printf("[kv_append_rope] %s hd=%d q_diff=%lld page_diff=%lld rotated=%lld %s\n",
                  DTypeName(t), D, static_cast<long long>(q_diff),
                  static_cast<long long>(page_diff), static_cast<long long>(rotated),
                  pass ? "PASS" : "FAIL");
      EXPECT_TRUE(pass);
    }
  }
}

}  // namespace
}  // namespace longview::cuda
