// The CPU backend of the runner interface: CpuModel::ForwardBatch over HostKvStorage pages.
//
//   ASSIGN_OR_RETURN(auto runner, CpuModelRunner::Create(lm, /*num_pages=*/4096,
//   /*page_size=*/16)); RETURN_IF_ERROR(runner->Execute(plan, result));
// Thread-safety: driven by one thread (the engine loop).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "common/status.h"
#include "engine/attention/hip.h"
#include "engine/cpu/cpu_model.h"
#include "engine/model/loaded_model.h"
#include "engine/runner/model_runner.h"
#include "kvcache/host_kv_storage.h"

namespace longview {

// The CPU backend: CpuModel::ForwardBatch over HostKvStorage pages, with mode hip's decode
// masks per sequence.
class CpuModelRunner : public ModelRunner {
 public:
  // `model` must outlive the runner.
  CpuModelRunner(CpuModel& model, int32_t num_pages, int64_t page_size);
  // A runner with a CPU model of its own over `lm`'s host weights.
  static absl::StatusOr<std::unique_ptr<CpuModelRunner>> Create(const LoadedModel& lm,
                                                                int32_t num_pages,
                                                                int64_t page_size);
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  bool supports_kv_policies() const override { return true; }
  bool supports_hip() const override { return true; }
  absl::Status Execute(const StepPlan& plan, StepResult& result) override;
  HostKvStorage& kv() { return kv_; }
  KvStorage& kv_storage() override { return kv_; }

 private:
  std::unique_ptr<CpuModel> owned_;  // set by Create
  CpuModel& model_;
  HostKvStorage kv_;
  std::vector<BatchSequence> batch_;  // scratch
  // Mode hip's decode masks per sequence id: dropped when it finishes or restarts, copied to
  // a fork.
  absl::node_hash_map<int64_t, HipSequenceMasks> hip_masks_;  // stable pointers
};

}  // namespace longview
