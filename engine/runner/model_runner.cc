#include "engine/runner/model_runner.h"

namespace longview {

int64_t StepPlan::NumTokens() const {
  int64_t n = 0;
  for (const ScheduledSequence& s : seqs) n += static_cast<int64_t>(s.token_ids.size());
  return n;
}

}  // namespace longview
