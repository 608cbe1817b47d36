#!/usr/bin/env bash
# Builds a Release build with CUDA into build-cuda/ and assembles a relocatable folder
# dist/longview-bundle/ for the GPU machine (TOOLCHAIN.md: no gRPC/RocksDB/Abseil there):
#   bin/   gpu_kernel_tests, gpu_model_tests and the CUDA benchmarks (stripped); the longview
#          server too with LONGVIEW_BUNDLE_SERVER=1 (+15 MB of gRPC/TLS libraries: the working
#          tree and the bundle travel to the GPU machine within 64 MiB together)
#   lib/   every non-system shared library they need per ldd (stripped); glibc, libstdc++,
#          libgcc_s, libm, ld-linux and CUDA/NCCL libraries are left to the GPU machine
#   run_gpu.sh  GPU tests and/or benchmarks with their PyTorch peers, run from the repository
#               root (the working tree travels with the bundle: models, test data, peer scripts)
# Usage: deploy/bundle.sh   (LONGVIEW_JOBS=<n> build parallelism; LONGVIEW_BUILD_DIR, LONGVIEW_DIST
#        other build / bundle folders, e.g. dist/<name>/longview-bundle)
# Then on the GPU machine, from the repository root:
#   dist/longview-bundle/run_gpu.sh [all|kernels,models,bench,e2e]   (logs and JSON to $OUT)
# Not part of CI (CI runs deploy/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${LONGVIEW_BUILD_DIR:-build-cuda}"
DIST="${LONGVIEW_DIST:-dist/longview-bundle}"
JOBS="${LONGVIEW_JOBS:-$(nproc)}"

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGVIEW_CUDA=ON >/dev/null
TARGETS=(gpu_kernel_tests gpu_model_tests decode_attention_bench prefill_attention_bench
         e2e_decode_bench streaming_gpu_bench kv_policy_gpu_bench hip_mask_bench)
if [[ "${LONGVIEW_BUNDLE_SERVER:-0}" == 1 ]]; then TARGETS+=(longview); fi
# LONGVIEW_BUNDLE_TARGETS="a b" bundles exactly those targets (e.g. gpu_api_tests, which brings
# the gRPC/TLS libraries: bundle it alone to stay within the 64 MiB that travel).
if [[ -n "${LONGVIEW_BUNDLE_TARGETS:-}" ]]; then read -r -a TARGETS <<< "$LONGVIEW_BUNDLE_TARGETS"; fi
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]}"
BINS=()
for t in "${TARGETS[@]}"; do
  found=""
  for d in tests tools/bench server; do
    if [[ -x "$BUILD_DIR/$d/$t" ]]; then found="$BUILD_DIR/$d/$t"; fi
  done
  if [[ -z "$found" ]]; then echo "bundle: no binary for $t (is nvcc on PATH?)" >&2; exit 1; fi
  BINS+=("$found")
done

rm -rf "$DIST"
mkdir -p "$DIST/bin" "$DIST/lib"
for b in "${BINS[@]}"; do
  cp "$b" "$DIST/bin/"
  strip --strip-unneeded "$DIST/bin/$(basename "$b")"
done

# Libraries the GPU machine has (or must supply itself): system C/C++ runtime and CUDA/NCCL.
is_system_lib() {
  case "$(basename "$1")" in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) return 0 ;;
    libcuda.so*|libcudart.so*|libcublas*|libnccl.so*|libnvidia*) return 0 ;;
    linux-vdso*) return 0 ;;
  esac
  return 1
}
for b in "${BINS[@]}"; do
  ldd "$b" | awk '/=> \// {print $3}' | while read -r lib; do
    is_system_lib "$lib" && continue
    dest="$DIST/lib/$(basename "$lib")"
    [[ -e "$dest" ]] && continue
    cp -L "$lib" "$dest"
    chmod u+w "$dest"
    strip --strip-unneeded "$dest"
  done
done
cp deploy/run_gpu.sh "$DIST/run_gpu.sh"
# LONGVIEW_BUNDLE_PYLIBS="gguf ..." packs those pure-Python packages of .venv (the GPU machine
# has no network) as pylib.tar.xz: unpack it there and put the folder on PYTHONPATH.
if [[ -n "${LONGVIEW_BUNDLE_PYLIBS:-}" ]]; then
  site=$(echo .venv/lib/python3*/site-packages)
  read -r -a pkgs <<< "$LONGVIEW_BUNDLE_PYLIBS"
  tar -C "$site" --exclude=__pycache__ --exclude=scripts -cJf "$DIST/pylib.tar.xz" "${pkgs[@]}"
fi

chmod +x "$DIST/run_gpu.sh"

size_mb=$(du -sm "$DIST" | cut -f1)
echo "bundle: $DIST ${size_mb} MB"
ls -la "$DIST/bin" "$DIST/lib"
if (( size_mb >= 60 )); then
  echo "bundle: ${size_mb} MB is not under 60 MB" >&2
  exit 1
fi
