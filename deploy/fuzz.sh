#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang under ASan + UBSan into build-fuzz/ and runs each
# for LONGVIEW_FUZZ_SECONDS (default 60) seconds, starting from a scratch copy of its committed
# corpus (fuzz/corpus/<target>/ is never written). Prints one summary line per target; exits 1
# when any target crashed, leaked, hung, ran out of memory or failed a FUZZ_CHECK.
# Usage: deploy/fuzz.sh [target...]        (default: every fuzz/*_fuzzer.cc)
#   LONGVIEW_FUZZ_SECONDS=600 deploy/fuzz.sh safetensors_fuzzer
# A failing input is kept as build-fuzz/fuzz-run/<target>/findings/crash-* (or leak-, oom-,
# timeout-); replay it with `build-fuzz/fuzz/<target> FILE`, fix the parser, and add the case to
# the target's unit tests (and the input to fuzz/corpus/<target>/).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install_deps.sh
BUILD_DIR="${LONGVIEW_FUZZ_BUILD_DIR:-build-fuzz}"
SECONDS_PER_TARGET="${LONGVIEW_FUZZ_SECONDS:-60}"

if (($# > 0)); then
  targets=("$@")
else
  targets=()
  for f in fuzz/*_fuzzer.cc; do targets+=("$(basename "$f" .cc)"); done
fi

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
# -gline-tables-only: file:line in stack traces at little compile cost.
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 "${launcher[@]}" \
  -DCMAKE_CXX_FLAGS=-gline-tables-only \
  -DLONGVIEW_FUZZ=ON -DLONGVIEW_CUDA=OFF -DLONGVIEW_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${targets[@]}"

export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
failed=0
summaries=()
for t in "${targets[@]}"; do
  run_dir="$BUILD_DIR/fuzz-run/$t"
  rm -rf "$run_dir"
  mkdir -p "$run_dir/corpus" "$run_dir/findings"
  cp fuzz/corpus/"$t"/* "$run_dir/corpus/"
  seeds=$(find "$run_dir/corpus" -type f | wc -l)
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s from $seeds seeds (log: $run_dir/log)"
  status=0
  "$BUILD_DIR/fuzz/$t" "$run_dir/corpus" -max_total_time="$SECONDS_PER_TARGET" \
    -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$run_dir/findings/" >"$run_dir/log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run_dir/log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$run_dir/log" | tail -1 | cut -d' ' -f2)
  corpus=$(find "$run_dir/corpus" -type f | wc -l)
  findings=$(find "$run_dir/findings" -type f | head -1)
  if ((status == 0)) && [[ -z "$findings" ]]; then
    summaries+=("fuzz: $t OK: ${runs:-?} runs in ${SECONDS_PER_TARGET}s, cov ${cov:-?}, corpus $seeds -> $corpus")
  else
    failed=1
    tail -n 60 "$run_dir/log"
    summaries+=("fuzz: $t FAILED (exit $status): ${findings:-no input saved}; log $run_dir/log")
  fi
done
printf '%s\n' "${summaries[@]}"
exit "$failed"
