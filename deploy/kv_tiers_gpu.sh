#!/usr/bin/env bash
# The KV tiers on the GPU machine, one visit: tools/bench/kv_tier_gpu_bench (page moves against
# a plain pinned cudaMemcpyAsync, TTFT of a 32k prompt from host and disk against recompute,
# decode with write-back; random Llama-3-8B-shaped model) and tools/gpu/kv_tiers_cuda_check.py
# (the engine's asynchronous page moves in `longview serve --device cuda`: host hit, disk hit
# after a restart, answers equal to a server without tiers). Logs and JSON go to $OUT.
#
# Travels in carry: dist/tbpack/tierbundle.tar.xz, made here by
#   LONGVIEW_BUNDLE_TARGETS="longview kv_tier_gpu_bench" LONGVIEW_BUILD_DIR=build \
#     LONGVIEW_DIST=dist/tierbundle deploy/bundle.sh
#   tar -C dist -cJf dist/tbpack/tierbundle.tar.xz tierbundle
# Usage (GPU machine, repository root): deploy/kv_tiers_gpu.sh [bench,check]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/kv_tiers_gpu}"
mkdir -p "$OUT"
PARTS="${1:-bench,check}"
BUNDLE=dist/tierbundle
[[ -x "$BUNDLE/bin/longview" ]] || tar -C dist -xJf dist/tbpack/tierbundle.tar.xz
export LD_LIBRARY_PATH="$PWD/$BUNDLE/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc;
  free -g; df -h /tmp; } > "$OUT/machine.txt" 2>&1
status=0
if [[ ",$PARTS," == *,bench,* ]]; then
  "$BUNDLE/bin/kv_tier_gpu_bench" --disk-dir /tmp/lv_kv_tier_gpu_bench \
    > "$OUT/kv_tier_gpu_bench.jsonl" 2> "$OUT/kv_tier_gpu_bench.log" || status=1
fi
if [[ ",$PARTS," == *,check,* ]]; then
  python3 tools/gpu/kv_tiers_cuda_check.py "$BUNDLE/bin/longview" models/longview-tiny \
    "$OUT/kv_tiers_cuda_check.json" > "$OUT/kv_tiers_cuda_check.log" 2>&1 || status=1
fi
exit $status
