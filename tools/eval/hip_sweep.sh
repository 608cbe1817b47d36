#!/usr/bin/env bash
# HiP against dense (docs/eval/hip.md): dense, then attention mode hip at several final top-k
# through `longview eval` on the CPU backend, then one table and one plot across the runs.
# Usage: tools/eval/hip_sweep.sh OUT_DIR MODEL SUITE SINKS WINDOW STAGE_PREFIX "TOPK..." [LANES]
#   e.g. tools/eval/hip_sweep.sh docs/eval/hip-tiny models/longview-tiny policy 16 128 \
#          64:1024,16:512 "512 256 128" 2
# Each run's stages are STAGE_PREFIX,4:TOPK (the last stage's chunks of 4 tokens); the rest of
# the mode (refresh, dense layers) takes its defaults. LANES parallel runs of one thread each
# (default 2); perplexity 128 tokens per step. Needs build/server/longview (LONGVIEW_BINARY to
# use another), .venv and .venv-plot (tools/python_env.sh [plot]).
set -euo pipefail
cd "$(dirname "$0")/../.."
usage="usage: hip_sweep.sh OUT_DIR MODEL SUITE SINKS WINDOW STAGE_PREFIX \"TOPK...\" [LANES]"
OUT="${1:?$usage}"
MODEL="${2:?$usage}"
SUITE="${3:?$usage}"
SINKS="${4:?$usage}"
WINDOW="${5:?$usage}"
PREFIX="${6:?$usage}"
read -r -a TOPKS <<<"${7:?$usage}"
LANES="${8:-2}"
BIN="${LONGVIEW_BINARY:-build/server/longview}"
mkdir -p "$OUT"
configs=("dense")
for k in "${TOPKS[@]}"; do configs+=("$k"); done
run_one() {
  if [[ "$1" == dense ]]; then
    sweep_run "$OUT" dense "$SUITE" "$MODEL" "$BIN"
  else
    sweep_run "$OUT" "hip_$1" "$SUITE" "$MODEL" "$BIN" --attention-mode hip --sinks "$SINKS" \
      --window "$WINDOW" --top-k "$1" --hip-stages "$PREFIX,4:$1"
  fi
}
source tools/eval/lanes.sh
run_lanes "$LANES" run_one "${configs[@]}"
sweep_report "$OUT" tools/eval/hip_report.py accuracy_vs_top_k.png
