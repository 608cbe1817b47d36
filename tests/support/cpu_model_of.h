// A CPU model over a loaded model's host weights, for tests that compare against the CPU engine.
//
//   std::unique_ptr<CpuModel> cpu = CpuModelOf(*lm);
//   ASSERT_TRUE(cpu->Forward({ids, 0, &table}, kv, true, logits).ok());
#pragma once

#include <memory>

#include "engine/cpu/cpu_model.h"
#include "engine/model/loaded_model.h"
#include "gtest/gtest.h"

namespace longview {

inline std::unique_ptr<CpuModel> CpuModelOf(const LoadedModel& lm) {
  auto m = CpuModel::Create(lm.config, lm.weights);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? std::move(*m) : nullptr;
}

}  // namespace longview
