#include "kernels/cuda/decode_attention/rope_tables.h"

#include <cmath>

namespace longview::cuda {

RopeTablesHost BuildRopeTables(const std::vector<float>& inv_freq, int64_t max_position) {
  RopeTablesHost t;
  t.half = static_cast<int>(inv_freq.size());
  t.num_hi_rows = static_cast<int>((max_position >> kRopeLoBits) + 1);
  t.lo.resize(static_cast<size_t>(kRopeLoRows) * t.half * 2);
  t.hi.resize(static_cast<size_t>(t.num_hi_rows) * t.half * 2);
  for (int r = 0; r < kRopeLoRows; ++r) {
    for (int i = 0; i < t.half; ++i) {
      const double a = static_cast<double>(r) * static_cast<double>(inv_freq[i]);
      t.lo[(static_cast<size_t>(r) * t.half + i) * 2] = static_cast<float>(std::cos(a));
      t.lo[(static_cast<size_t>(r) * t.half + i) * 2 + 1] = static_cast<float>(std::sin(a));
    }
  }
  for (int r = 0; r < t.num_hi_rows; ++r) {
    for (int i = 0; i < t.half; ++i) {
      // r * 1024 * f is exact in double (f has 24 significant bits, r * 1024 fewer than 22).
      const double a = static_cast<double>(r) * kRopeLoRows * static_cast<double>(inv_freq[i]);
      t.hi[(static_cast<size_t>(r) * t.half + i) * 2] = static_cast<float>(std::cos(a));
      t.hi[(static_cast<size_t>(r) * t.half + i) * 2 + 1] = static_cast<float>(std::sin(a));
    }
  }
  return t;
}

}  // namespace longview::cuda
