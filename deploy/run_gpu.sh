#!/usr/bin/env bash
# On the GPU machine, from the repository root (the bundle is dist/longview-bundle/):
#   dist/longview-bundle/run_gpu.sh [all | a comma-separated list of: kernels,models,bench,e2e,stream,hip,policy]
#   kernels  gpu_kernel_tests (every kernel against double references)
#   models   transformers golden files for the CUDA parity tests (tools/golden/make_golden.py
#            --gpu-shapes -> tests/data/golden_gpu, seeded: the same files every time), then
#            gpu_model_tests
#   bench  prefill and decode attention benchmarks, each with its PyTorch peer in the same run
#   e2e      e2e_decode_bench (random Llama-3-8B shape) and Hugging Face generate on the same shape
#   api      gpu_api_tests: the OpenAI HTTP and gRPC APIs served by the CUDA backend (bundle it
#            alone: LONGVIEW_BUNDLE_TARGETS=gpu_api_tests deploy/bundle.sh)
#   stream   streaming_gpu_bench: a 1M-token StreamingLLM stream (sinks 4 + window 4096), 8B shape
#   hip      HiP (issue 15): hip_mask_bench (decode: the pruning stages, spans, selection and dense
#            attention at 128k / 512k / 1M, 8B shape; prefill: the pruning of every query block at
#            32k-128k) with SDPA at the same shapes (decode, and causal prefill)
#   policy   KV policies: the per-key statistics' cost on decode attention (decode_attention_bench
#            --only policy) and kv_policy_gpu_bench (memory per sequence and decode throughput
#            per policy, 8B shape, 16 x 8k prompts, budget 25%)
# Logs and JSON lines go to $OUT (or ./gpu_out), packed into $OUT/gpu_results.tgz at the end;
# a short summary is printed last. LV_TEST_SEED=<n> repeats a kernel-test seed.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$HERE"  # the repository root: the nearest folder above the bundle with deploy/run_gpu.sh
while [[ "$REPO" != / && ! -f "$REPO/deploy/run_gpu.sh" ]]; do REPO="$(dirname "$REPO")"; done
MODE=",${1:-all},"
want() { [[ "$MODE" == *",$1,"* || "$MODE" == *",all,"* ]]; }
OUT_DIR="${OUT:-$PWD/gpu_out}"
LOGS="$OUT_DIR/logs"
mkdir -p "$LOGS"
# Only our binaries see the bundled libraries (Debian 12 libssl/libz must not shadow Python's).
LIBS="$HERE/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
run() { LD_LIBRARY_PATH="$LIBS" "$@"; }
export LV_TEST_DATA="$REPO/tests/data" LV_MODELS_DIR="$REPO/models"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv > "$LOGS/gpu.txt" 2>&1
(cd "$REPO" && git rev-parse HEAD 2>/dev/null || echo unknown) > "$LOGS/commit.txt"
date -u +%Y-%m-%dT%H:%M:%SZ > "$LOGS/date.txt"
rc=0
step() {  # step NAME CMD...: runs CMD with output to $LOGS/NAME.log, records its exit code
  local name="$1"; shift
  local t0=$SECONDS
  "$@" > "$LOGS/$name.log" 2>&1
  local r=$?
  echo "== $name rc=$r ($((SECONDS - t0)) s)" | tee -a "$LOGS/summary.txt"
  (( r != 0 )) && rc=1
  return 0
}
if want kernels; then
  step gpu_kernel_tests run "$HERE/bin/gpu_kernel_tests"
fi
if want models; then
  step golden_gpu python3 "$REPO/tools/golden/make_golden.py" --gpu-shapes --out "$REPO/tests/data/golden_gpu"
  cp "$REPO/tests/data/golden_gpu/MANIFEST.json" "$LOGS/golden_gpu_manifest.json"
  step gpu_model_tests run "$HERE/bin/gpu_model_tests"
fi
if want bench; then
  step prefill_attention_bench sh -c "LD_LIBRARY_PATH='$LIBS' '$HERE/bin/prefill_attention_bench' > '$LOGS/prefill_attention_bench.jsonl'"
  step prefill_attention_peer sh -c "python3 '$REPO/tools/bench/prefill_attention_peer.py' > '$LOGS/prefill_attention_peer.jsonl'"
  step decode_attention_bench sh -c "LD_LIBRARY_PATH='$LIBS' '$HERE/bin/decode_attention_bench' > '$LOGS/decode_attention_bench.jsonl'"
  step decode_attention_peer sh -c "python3 '$REPO/tools/bench/decode_attention_peer.py' > '$LOGS/decode_attention_peer.jsonl'"
fi
if want e2e; then
  step e2e_decode_bench sh -c "LD_LIBRARY_PATH='$LIBS' '$HERE/bin/e2e_decode_bench' > '$LOGS/e2e_decode_bench.jsonl'"
  step e2e_hf_peer sh -c "python3 '$REPO/tools/bench/e2e_hf_peer.py' > '$LOGS/e2e_hf_peer.jsonl'"
fi
if want api && [[ -x "$HERE/bin/gpu_api_tests" ]]; then
  step gpu_api_tests run "$HERE/bin/gpu_api_tests"
fi
if want stream; then
  step streaming_gpu_bench sh -c "LD_LIBRARY_PATH='$LIBS' '$HERE/bin/streaming_gpu_bench' > '$LOGS/streaming_gpu_bench.jsonl'"
fi
if want hip; then
  step hip_mask_bench sh -c "LD_LIBRARY_PATH='$LIBS' '$HERE/bin/hip_mask_bench' > '$LOGS/hip_mask_bench.jsonl'"
  step hip_sdpa_peer sh -c "python3 '$REPO/tools/bench/decode_attention_peer.py' --shapes 1x131072,1x524288,1x1048576,8x131072 --iters 50 --warmup 5 > '$LOGS/hip_sdpa_peer.jsonl'"
  step hip_prefill_peer sh -c "python3 '$REPO/tools/bench/prefill_attention_peer.py' --causal 32768,65536,131072 --iters 5 --warmup 1 > '$LOGS/hip_prefill_peer.jsonl'"
fi
if want policy; then
  step key_stats_bench sh -c "LD_LIBRARY_PATH='$LIBS' '$HERE/bin/decode_attention_bench' --only policy > '$LOGS/key_stats_bench.jsonl'"
  step kv_policy_gpu_bench sh -c "LD_LIBRARY_PATH='$LIBS' '$HERE/bin/kv_policy_gpu_bench' > '$LOGS/kv_policy_gpu_bench.jsonl'"
fi
tar -C "$OUT_DIR" -czf "$OUT_DIR/gpu_results.tgz" logs
echo "== gpu: $(tail -n 1 "$LOGS/gpu.txt")"
for f in "$LOGS"/*test*.log; do
  [[ -e "$f" ]] || continue
  echo "== $(basename "$f"): $(grep -c ' PASS' "$f") PASS lines, $(grep -c 'FAIL$' "$f") FAIL lines"
  grep -E '^\[  (PASSED|FAILED) |FAIL$|Failure|error' "$f" | head -25
done
for f in "$LOGS"/*.jsonl; do [[ -e "$f" ]] && { echo "== $(basename "$f")"; cat "$f"; }; done
for f in "$LOGS"/*.log; do
  [[ "$f" == *test* ]] && continue
  echo "== $(basename "$f") (tail)"; tail -n 4 "$f"
done
exit $rc
