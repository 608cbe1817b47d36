#include "engine/cpu/cpu_model_runner.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace longview {

CpuModelRunner::CpuModelRunner(CpuModel& model, int32_t num_pages, int64_t page_size)
    : model_(model), kv_(model.kv_layout(page_size), num_pages) {}

absl::StatusOr<std::unique_ptr<CpuModelRunner>> CpuModelRunner::Create(const LoadedModel& lm,
                                                                       int32_t num_pages,
                                                                       int64_t page_size) {
  ASSIGN_OR_RETURN(std::unique_ptr<CpuModel> model, CpuModel::Create(lm.config, lm.weights));
  auto runner = std::make_unique<CpuModelRunner>(*model, num_pages, page_size);
  runner->owned_ = std::move(model);
  return runner;
}

absl::Status CpuModelRunner::Execute(const StepPlan& plan, StepResult& result) {
  RETURN_IF_ERROR(kv_.CopyPages(plan.copies));
  RETURN_IF_ERROR(kv_.CopyStates(plan.state_copies));
  RETURN_IF_ERROR(kv_.ClearStates(plan.cleared_state_slots));
  batch_.clear();
  result.vocab_size = vocab_size();
  result.logits_row.assign(plan.seqs.size(), -1);
  result.logits_count.assign(plan.seqs.size(), 0);
  result.tokens.clear();  // this backend returns logits only
  result.token_logprobs.clear();
  int32_t row = 0;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSequence& s = plan.seqs[i];
    batch_.push_back(BatchSequence{.tokens = s.token_ids,
                                   .start_pos = s.start_pos,
                                   .block_ids = s.block_ids,
                                   .need_logits = s.need_logits,
                                   .all_logits = s.all_logits,
                                   .attention = s.attention});
    if (!s.need_logits) continue;
    result.logits_row[i] = row;
    result.logits_count[i] = s.all_logits ? static_cast<int32_t>(s.token_ids.size()) : 1;
    row += result.logits_count[i];
  }
  return model_.ForwardBatch(batch_, kv_, result.logits);
}

}  // namespace longview
