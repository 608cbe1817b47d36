#!/usr/bin/env bash
# The KV-policy comparison of docs/eval/kv_policies.md: dense, then every policy (streaming, h2o,
# snapkv, lazy) at budgets of 50%, 25% and 10% of each task's tokens, through `longview eval`
# on the CPU backend, then one table and one plot across the runs.
# Usage: tools/eval/policy_sweep.sh OUT_DIR MODEL SUITE [LANES]
#   e.g. tools/eval/policy_sweep.sh docs/eval/kv-policies-tiny models/longview-tiny policy 2
# LANES parallel runs of one thread each (default 2). Perplexity is computed 128 tokens per
# step, so that a policy evicts within the text. Needs build/server/longview (LONGVIEW_BINARY
# to use another), .venv and .venv-plot (tools/python_env.sh [plot]).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:?usage: policy_sweep.sh OUT_DIR MODEL SUITE [LANES]}"
MODEL="${2:?model}"
SUITE="${3:?suite}"
LANES="${4:-2}"
BIN="${LONGVIEW_BINARY:-build/server/longview}"
mkdir -p "$OUT"
configs=("none 0")
for p in streaming h2o snapkv lazy; do
  for f in 0.5 0.25 0.1; do configs+=("$p $f"); done
done
run_one() {
  read -r policy fraction <<<"$1"
  if [[ "$policy" == none ]]; then
    sweep_run "$OUT" dense "$SUITE" "$MODEL" "$BIN"
  else
    sweep_run "$OUT" "${policy}_${fraction}" "$SUITE" "$MODEL" "$BIN" \
      --kv-policy "$policy" --kv-budget-fraction "$fraction"
  fi
}
source tools/eval/lanes.sh
run_lanes "$LANES" run_one "${configs[@]}"
sweep_report "$OUT" tools/eval/policy_report.py accuracy_vs_budget.png
