#!/usr/bin/env bash
# The sliding-window comparison of docs/eval/sliding_window.md: dense and sliding_window with
# windows 256/512/1024 x sinks 0/4, suite `window` (passkey at 1k/2k/4k by depth, per-position
# perplexity and KL on the held-out texts), then one report across the runs.
# Usage: tools/eval/window_sweep.sh OUT_DIR [LANES]   (LANES parallel runs of one thread each;
# default 2). Needs build/server/longview (LONGVIEW_BINARY to use another) and .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${1:?usage: window_sweep.sh OUT_DIR [LANES]}"
LANES="${2:-2}"
BIN="${LONGVIEW_BINARY:-build/server/longview}"
PY=.venv/bin/python
mkdir -p "$OUT"
configs=("dense 0 0" "sliding_window 256 0" "sliding_window 256 4" "sliding_window 512 0"
         "sliding_window 512 4" "sliding_window 1024 0" "sliding_window 1024 4")
run_one() {
  read -r mode w s <<<"$1"
  local name="$mode"; [[ "$mode" == dense ]] || name="sw${w}_s${s}"
  local extra=(); [[ "$mode" == dense ]] || extra=(--window "$w" --sinks "$s")
  "$PY" tools/eval/run_eval.py --suite window --binary "$BIN" --threads 1 \
    --attention-mode "$mode" "${extra[@]}" --out-dir "$OUT/$name" >"$OUT/$name.log" 2>&1
  echo "done $name"
}
source tools/eval/lanes.sh
run_lanes "$LANES" run_one "${configs[@]}"
"$PY" tools/eval/window_report.py "$OUT"/dense "$OUT"/sw{256,512,1024}_s{0,4} >"$OUT/report.md"
echo "report: $OUT/report.md"
