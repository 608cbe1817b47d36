#!/usr/bin/env bash
# SmolLM2-135M-Instruct on the GPU machine, one visit: transformers' float64 reference made
# there from the GGUF, the CUDA backend checked against it through the API, and the dense
# quality table (tools/eval/run_eval.py --suite full) on the CUDA backend. Logs and JSON go
# to $OUT. Run from the repository root on the GPU machine.
#
# Travels in carry (the working tree plus at most ~24 MiB per device call; the warm machine
# keeps ignored folders between back-to-back calls):
#   dist/smol1..4/part   the Q4_1 GGUF split in four (split -n 4 of the fetched file)
#   dist/sbpack/server-bundle.tar.xz and dist/sbpack/pylib.tar.xz: the server bundle
#       (LONGVIEW_BUNDLE_TARGETS=longview LONGVIEW_BUNDLE_PYLIBS=gguf LONGVIEW_BUILD_DIR=build
#       LONGVIEW_DIST=dist/server-bundle deploy/bundle.sh; then move pylib.tar.xz out and
#       tar -C dist -cJf dist/sbpack/server-bundle.tar.xz server-bundle): xz makes the 26 MB
#       bundle 7.4 MB, which is what lets it travel beside the 41 MB working tree
# Usage: deploy/smollm2_gpu.sh [reference,check,eval]   (default: all three)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/smollm2_gpu}"
mkdir -p "$OUT"
PARTS="${1:-reference,check,eval}"
SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GGUF=dist/smol/SmolLM2-135M-Instruct.Q4_1.gguf
BUNDLE=dist/server-bundle
export LD_LIBRARY_PATH="$PWD/$BUNDLE/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
mkdir -p dist/smol dist/pylib
[[ -x "$BUNDLE/bin/longview" ]] || tar -C dist -xJf dist/sbpack/server-bundle.tar.xz
tar -C dist/pylib -xJf dist/sbpack/pylib.tar.xz
[[ -f "$GGUF" ]] || cat dist/smol1/part dist/smol2/part dist/smol3/part dist/smol4/part > "$GGUF"
echo "$SHA  $GGUF" | sha256sum -c - || exit 1
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv;
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'; } \
  > "$OUT/machine.txt" 2>&1
status=0
REF="$OUT/transformers_reference.json"
if [[ ",$PARTS," == *,reference,* ]]; then
  PYTHONPATH="$PWD/dist/pylib" python3 tools/golden/make_smollm2_transformers_reference.py \
    "$GGUF" "$REF" > "$OUT/reference.log" 2>&1 || status=1
fi
[[ -f "$REF" ]] || REF=tests/data/smollm2/transformers_reference.json
if [[ ",$PARTS," == *,check,* ]]; then
  python3 tools/gpu/smollm2_cuda_check.py "$BUNDLE/bin/longview" "$GGUF" "$REF" \
    "$OUT/cuda_check.json" > "$OUT/cuda_check.log" 2>&1 || status=1
fi
if [[ ",$PARTS," == *,eval,* ]]; then
  time python3 tools/eval/run_eval.py --model "$GGUF" --binary "$BUNDLE/bin/longview" \
    --device cuda --suite full --out-dir "$OUT/eval_full" > "$OUT/eval.log" 2>&1 || status=1
  nvidia-smi >> "$OUT/machine.txt" 2>&1
fi
exit $status
