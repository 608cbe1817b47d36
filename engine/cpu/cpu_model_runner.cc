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
  RETURN_IF_ERROR(kv_.CopySlots(plan.slot_copies));
  RETURN_IF_ERROR(kv_.CopyStates(plan.state_copies));
  RETURN_IF_ERROR(kv_.ClearStates(plan.cleared_state_slots));
  for (int64_t id : plan.finished_seq_ids) hip_masks_.erase(id);
  for (int64_t id : plan.reset_seq_ids) hip_masks_.erase(id);
  for (const auto& [parent, child] : plan.forked_seq_ids) {
    auto it = hip_masks_.find(parent);
    if (it != hip_masks_.end()) hip_masks_[child] = it->second;
  }
  batch_.clear();
  result.vocab_size = vocab_size();
  result.logits_row.assign(plan.seqs.size(), -1);
  result.logits_count.assign(plan.seqs.size(), 0);
  result.tokens.clear();  // this backend returns logits only
  result.token_logprobs.clear();
  result.key_stats.assign(plan.seqs.size(), {});
  const ModelConfig& cfg = model_.config();
  const int64_t num_kv_heads = kv_.layout().num_kv_heads;
  result.key_stats_heads = num_kv_heads;
  result.key_stats_row_norm = static_cast<double>(cfg.num_hidden_layers) *
                              static_cast<double>(cfg.num_attention_heads / num_kv_heads);
  int32_t row = 0;
  for (size_t i = 0; i < plan.seqs.size(); ++i) {
    const ScheduledSequence& s = plan.seqs[i];
    const bool stats = s.kv_selection != nullptr && s.key_stats_rows > 0;
    if (stats) {
      int64_t keys = 0;
      for (int64_t h = 0; h < num_kv_heads; ++h) keys += s.kv_selection->NumKeys(h);
      result.key_stats[i].assign(keys, 0.0f);
    }
    batch_.push_back(BatchSequence{.tokens = s.token_ids,
                                   .start_pos = s.start_pos,
                                   .block_ids = s.block_ids,
                                   .need_logits = s.need_logits,
                                   .all_logits = s.all_logits,
                                   .attention = s.attention,
                                   .selection = s.kv_selection.get(),
                                   .key_stats_rows = stats ? s.key_stats_rows : 0,
                                   .key_stats = stats ? result.key_stats[i].data() : nullptr,
                                   .hip_masks = s.attention->hip() != nullptr
                                                    ? &hip_masks_[s.seq_id]
                                                    : nullptr,
                                   .embeddings = s.embeddings.get()});
    if (!s.need_logits) continue;
    result.logits_row[i] = row;
    result.logits_count[i] = s.all_logits ? static_cast<int32_t>(s.token_ids.size()) : 1;
    row += result.logits_count[i];
  }
  return model_.ForwardBatch(batch_, kv_, result.logits);
}

}  // namespace longview
