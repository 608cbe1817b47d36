// Comparing greedy continuations of two precisions (GPU tests of the CUDA backend): equal, or
// equal up to a near-tie of the CPU engine's own logits, where bf16 / fp16 may legitimately
// choose the other token.
//
//   EXPECT_TRUE(GreedyAgrees(lm, prompt, gpu_tokens, cpu_tokens, /*tol=*/1e-2, "label"));
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "scheduler/generator.h"
#include "gtest/gtest.h"
#include "kvcache/block_pool.h"
#include "kvcache/block_table.h"

#include "tests/support/cpu_model_of.h"

namespace longview {

// How far `token` is from the CPU engine's best next token after `ids`, relative to the row's
// largest |logit|: 0 when it is the CPU's argmax. Greedy runs in two precisions may part only
// where this is within the logit tolerance (a near-tie of the reference itself).
inline double CpuGap(const LoadedModel& lm, const std::vector<int32_t>& ids, int32_t token) {
  const int64_t T = static_cast<int64_t>(ids.size());
  BlockTable table(16);
  BlockPool pool(static_cast<int32_t>(T / 16 + 2));
  table.Append(*pool.Allocate(table.BlocksNeeded(T)));
  std::unique_ptr<CpuModel> model = CpuModelOf(lm);
  HostKvStorage kv(model->kv_layout(16), pool.num_blocks());
  std::vector<float> logits;
  EXPECT_TRUE(model->Forward({ids, 0, &table}, kv, false, logits).ok());
  float best = -INFINITY, scale = 0;
  for (float x : logits) best = std::max(best, x), scale = std::max(scale, std::fabs(x));
  return (best - logits[token]) / scale;
}

// Compares a GPU greedy continuation with the CPU's: equal, or equal up to a first difference
// at which the GPU's token is within `tol` of the CPU's best (a near-tie). Prints one line.
inline bool GreedyAgrees(const LoadedModel& lm, const std::vector<int32_t>& prompt,
                  const std::vector<int32_t>& gpu, const std::vector<int32_t>& cpu, double tol,
                         const std::string& label) {
  size_t same = 0;
  while (same < gpu.size() && same < cpu.size() && gpu[same] == cpu[same]) ++same;
  bool ok = same == gpu.size() && gpu.size() == cpu.size();
  double gap = 0;
  if (!ok && same < gpu.size() && same < cpu.size()) {
    std::vector<int32_t> ids = prompt;
    ids.insert(ids.end(), cpu.begin(), cpu.begin() + same);
    gap = CpuGap(lm, ids, gpu[same]);
    ok = gap <= tol;
  }
  std::printf("[greedy] %s equal_prefix=%zu/%zu%s %s\n", label.c_str(), same, cpu.size(),
              same == cpu.size() ? ""
                                 : absl::StrFormat(" (then a near-tie: the GPU's token is %.2g "
                                                   "of max|logit| below the CPU's best, tol %.2g)",
                                                   gap, tol).c_str(),
              ok ? "PASS" : "FAIL");
  return ok;
}

}  // namespace longview
