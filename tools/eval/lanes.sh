# Sourced by the eval sweeps (window_sweep.sh, policy_sweep.sh): runs `FN CONFIG` for each
# CONFIG, LANES at a time, and waits for all of them.
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
