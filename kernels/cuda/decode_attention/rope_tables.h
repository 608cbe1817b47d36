// Exact RoPE rotations for attention kernels that rotate cached keys in-kernel (DESIGN §3).
//
// The angle of frequency i at position p is p * inv_freq[i] (inv_freq as float32, the product
// exact). With p = hi * 1024 + lo the kernel composes cos/sin of the two parts by the
// angle-addition formula from two small tables computed here in double and stored as float:
//   lo table: [1024][head_dim / 2] of (cos, sin) of lo * inv_freq[i]
//   hi table: [num_hi_rows][head_dim / 2] of (cos, sin) of hi * 1024 * inv_freq[i]
// so the rotation's error is a few float32 ulps at any position below num_hi_rows * 1024 (a
// float32 product p * f is off by ~p * 6e-8 rad: 1 rad near 2^24).
//
//   RopeTablesHost t = BuildRopeTables(cpu::InvFrequencies(rope_params), /*max_position=*/1 << 24);
//   upload t.lo and t.hi; pass their device pointers and t.num_hi_rows to the kernel.
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <vector>

namespace longview::cuda {

inline constexpr int kRopeLoBits = 10;
inline constexpr int kRopeLoRows = 1 << kRopeLoBits;

struct RopeTablesHost {
  int half = 0;          // head_dim / 2
  int num_hi_rows = 0;   // positions [0, num_hi_rows * 1024) are covered
  std::vector<float> lo; // [1024][half][2] = (cos, sin)
  std::vector<float> hi; // [num_hi_rows][half][2]
};

// REQUIRES: inv_freq non-empty; 0 <= max_position < 2^31.
RopeTablesHost BuildRopeTables(const std::vector<float>& inv_freq, int64_t max_position);

}  // namespace longview::cuda
