# Sourced by the eval sweeps (window_sweep.sh, policy_sweep.sh, hip_sweep.sh): runs `FN CONFIG`
# for each CONFIG, LANES at a time, and waits for all of them.
#   run_lanes LANES FN CONFIG...
run_lanes() {
  local lanes="$1" fn="$2" i=0
  shift 2
  for c in "$@"; do
    "$fn" "$c" &
    if (( ++i % lanes == 0 )); then wait; fi
  done
  wait
}

# One run_eval.py run on one thread (perplexity 128 tokens per step) into OUT/NAME, its log in
# OUT/NAME.log; skipped when OUT/NAME holds a finished run.
#   sweep_run OUT NAME SUITE MODEL BIN [run_eval.py arguments...]
sweep_run() {
  local out="$1" name="$2" suite="$3" model="$4" bin="$5"
  shift 5
  [[ -f "$out/$name/summary.json" ]] && { echo "have $name"; return; }
  .venv/bin/python tools/eval/run_eval.py --suite "$suite" --model "$model" --binary "$bin" \
    --threads 1 --chunk 128 "$@" --out-dir "$out/$name" >"$out/$name.log" 2>&1
  echo "done $name"
}

# The sweep's table (OUT/report.md) and, where .venv-plot is, its plot.
#   sweep_report OUT REPORT_PY PNG_NAME
sweep_report() {
  .venv/bin/python "$2" "$1" >"$1/report.md"
  if [[ -x .venv-plot/bin/python ]]; then
    .venv-plot/bin/python "$2" "$1" --plot "$1/$3" >/dev/null
  fi
  echo "report: $1/report.md"
}
