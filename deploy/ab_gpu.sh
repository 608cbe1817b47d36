#!/usr/bin/env bash
# On the GPU machine, from the repository root: the attention and end-to-end benchmarks of two
# bundles (deploy/bundle.sh; e.g. the previous commit's and this one's) run alternately, A B A B,
# in one visit on one card, so that "within noise" can be judged from the same run.
#   deploy/ab_gpu.sh dist/base-bundle dist/head-bundle [ROUNDS]   (default 2 rounds)
# Writes $OUT/ab/<label>_<bench>_r<round>.jsonl (label: the bundle folder's name) and prints
# tools/bench/ab_summary.py's table.
set -uo pipefail
A="$1"; B="$2"; ROUNDS="${3:-2}"
OUT_DIR="${OUT:-$PWD/gpu_out}/ab"
mkdir -p "$OUT_DIR"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv > "$OUT_DIR/gpu.txt" 2>&1
date -u +%Y-%m-%dT%H:%M:%SZ > "$OUT_DIR/date.txt"
for r in $(seq 1 "$ROUNDS"); do
  for bundle in "$A" "$B"; do
    label="$(basename "$bundle")"
    for bench in decode_attention_bench prefill_attention_bench e2e_decode_bench; do
      LD_LIBRARY_PATH="$bundle/lib:/usr/local/cuda/lib64" timeout 240 "$bundle/bin/$bench" \
        > "$OUT_DIR/${label}_${bench}_r$r.jsonl" 2> "$OUT_DIR/${label}_${bench}_r$r.err" ||
        echo "== $label $bench round $r failed: rc=$?" | tee -a "$OUT_DIR/failures.txt"
    done
  done
done
python3 "$(dirname "$0")/../tools/bench/ab_summary.py" "$OUT_DIR" "$(basename "$A")" "$(basename "$B")" \
  | tee "$OUT_DIR/summary.md"
