#!/usr/bin/env bash
# Builds a Release build with CUDA into build-cuda/ and assembles a relocatable folder
# dist/longview-bundle/ for the GPU machine (TOOLCHAIN.md: no gRPC/RocksDB/Abseil there):
#   bin/   longview, gpu_kernel_tests, decode_attention_bench (stripped)
#   lib/   every non-system shared library they need per ldd (stripped); glibc, libstdc++,
#          libgcc_s, libm, ld-linux and CUDA/NCCL libraries are left to the GPU machine
#   tools/bench/decode_attention_peer.py
#   run_gpu.sh  GPU tests, then the benchmark and its peer; logs and JSON to $OUT when set
# Usage: deploy/bundle.sh            (LONGVIEW_JOBS=<n> to limit build parallelism)
# Not part of CI (CI runs deploy/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=build-cuda
DIST=dist/longview-bundle
JOBS="${LONGVIEW_JOBS:-$(nproc)}"

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLONGVIEW_CUDA=ON >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS" --target longview gpu_kernel_tests decode_attention_bench

BINS=("$BUILD_DIR/server/longview" "$BUILD_DIR/tests/gpu_kernel_tests"
      "$BUILD_DIR/tools/bench/decode_attention_bench")
for b in "${BINS[@]}"; do
  [[ -x "$b" ]] || { echo "bundle: missing $b (is nvcc on PATH?)" >&2; exit 1; }
done

rm -rf "$DIST"
mkdir -p "$DIST/bin" "$DIST/lib" "$DIST/tools/bench"
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
cp tools/bench/decode_attention_peer.py "$DIST/tools/bench/"

cat > "$DIST/run_gpu.sh" <<'RUN'
#!/usr/bin/env bash
# On the GPU machine: GPU kernel tests, then decode_attention_bench and its PyTorch peer.
# Writes logs and JSON lines to $OUT (or ./gpu_out); prints a short summary last.
# Usage: dist/longview-bundle/run_gpu.sh   (from anywhere; LV_TEST_SEED=<n> repeats a test seed)
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT_DIR="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT_DIR"
# Only our binaries see the bundled libraries (Debian 12 libssl/libz must not shadow Python's).
LIBS="$HERE/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$OUT_DIR/gpu.txt" 2>&1
LD_LIBRARY_PATH="$LIBS" "$HERE/bin/gpu_kernel_tests" > "$OUT_DIR/gpu_kernel_tests.log" 2>&1
tests_rc=$?
LD_LIBRARY_PATH="$LIBS" "$HERE/bin/decode_attention_bench" > "$OUT_DIR/decode_attention_bench.jsonl" \
  2> "$OUT_DIR/decode_attention_bench.err"
bench_rc=$?
python3 "$HERE/tools/bench/decode_attention_peer.py" > "$OUT_DIR/decode_attention_peer.jsonl" \
  2> "$OUT_DIR/decode_attention_peer.err"
peer_rc=$?
echo "== gpu: $(tail -n 1 "$OUT_DIR/gpu.txt")"
echo "== gpu_kernel_tests rc=$tests_rc: $(grep -c ' PASS' "$OUT_DIR/gpu_kernel_tests.log") cases PASS, $(grep -c ' FAIL' "$OUT_DIR/gpu_kernel_tests.log") FAIL"
grep -E '^\[  (PASSED|FAILED) |FAIL$' "$OUT_DIR/gpu_kernel_tests.log" | head -20
echo "== decode_attention_bench rc=$bench_rc"; cat "$OUT_DIR/decode_attention_bench.jsonl"
tail -n 3 "$OUT_DIR/decode_attention_bench.err"
echo "== decode_attention_peer rc=$peer_rc"; cat "$OUT_DIR/decode_attention_peer.jsonl"
tail -n 3 "$OUT_DIR/decode_attention_peer.err"
exit $(( tests_rc != 0 || bench_rc != 0 || peer_rc != 0 ))
RUN
chmod +x "$DIST/run_gpu.sh"

size_mb=$(du -sm "$DIST" | cut -f1)
echo "bundle: $DIST ${size_mb} MB"
ls -la "$DIST/bin" "$DIST/lib"
if (( size_mb >= 60 )); then
  echo "bundle: ${size_mb} MB is not under 60 MB" >&2
  exit 1
fi
