#!/usr/bin/env bash
# Reproduces docs/bench/serving_cpu.md's figures: `longview serve` with the embedded model on the
# CPU backend, measured by tools/bench/serve_bench.py and cross-checked with guidellm.
#
#   .venv/bin/pip install -r tools/bench/requirements.txt   # guidellm, once
#   tools/bench/serving_cpu.sh [OUT_DIR]                    # default docs/bench
#
# 1. Cross-check: a fresh server; one discarded warm-up run; then 3 rounds, each serve_bench then
#    guidellm, of the same workload (32 prompts, 128 input / 64 output tokens, ignore_eos,
#    concurrency 8).
# 2. Held-open connections: a fresh server with room for 2,000 queued requests; 2,000 prompts
#    (32 input / 8 output tokens) sent at once with --max-concurrency 2000.
# Loopback only; every command is bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-docs/bench}
BIN=${LONGVIEW_BINARY:-build/server/longview}
PY=.venv/bin/python
mkdir -p "$OUT"

SERVER_PID=
start_server() {  # args: extra serve options; sets PORT
  local log
  log=$(mktemp)
  "$BIN" serve --host 127.0.0.1 --port 0 --grpc-port 0 "$@" 2>"$log" >/dev/null &
  SERVER_PID=$!
  for _ in $(seq 1 120); do
    PORT=$(grep -oP 'HTTP on http://127\.0\.0\.1:\K[0-9]+' "$log" || true)
    [ -n "$PORT" ] && break
    sleep 0.5
  done
  [ -n "$PORT" ] || { cat "$log"; echo "server did not start" >&2; exit 1; }
  echo "server pid $SERVER_PID on port $PORT: $BIN serve $*" >&2
}
stop_server() {
  kill -TERM "$SERVER_PID"
  timeout 60 tail --pid="$SERVER_PID" -f /dev/null || kill -KILL "$SERVER_PID"
  SERVER_PID=
}
trap '[ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID"' EXIT

serve_bench() {  # args: result name, then serve_bench options
  local name=$1
  shift
  timeout 900 "$PY" tools/bench/serve_bench.py --base-url "http://127.0.0.1:$PORT" \
    --model longview-tiny --result-file "$OUT/$name.json" "$@" 2>&1 | tee "$OUT/$name.txt"
}
guidellm_c8() {  # args: result name
  HF_HUB_OFFLINE=1 timeout 900 .venv/bin/guidellm run \
    --backend "kind=openai_http,target=http://127.0.0.1:$PORT,model=longview-tiny,request_format=/v1/completions,timeout=600" \
    --tokenizer kind=hf_auto,model=models/longview-tiny \
    --data kind=synthetic_text,prompt_tokens=128,output_tokens=64 \
    --profile kind=concurrent,streams=8 \
    --constraint kind=max_requests,count=32 \
    --seed kind=static,value=0 \
    --output "kind=json,path=$OUT/$1.json" --output kind=console \
    --disable-progress 2>&1 | tee "$OUT/$1.txt"
}
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse HEAD)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) online CPUs"
  echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "python: $("$PY" --version 2>&1); guidellm: $("$PY" -c 'import importlib.metadata as m; print(m.version("guidellm"))')"
  echo "httpx used by serve_bench: $("$PY" -c 'import importlib.metadata as m; print("httpx2", m.version("httpx2"))' 2>/dev/null || echo httpx)"
} > "$OUT/environment.txt"
# Other processes compete for the CPUs with the server and the client: a busy machine gives
# slower and noisier figures. vmstat records the CPU use over the whole run.
vmstat 5 > "$OUT/vmstat.txt" &
VMSTAT_PID=$!
trap '[ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID"; kill "$VMSTAT_PID" 2>/dev/null' EXIT

C8=(--num-prompts 32 --random-input-len 128 --random-output-len 64 --max-concurrency 8 --seed 0)

# 1. Cross-check at concurrency 8.
start_server
timeout 900 "$PY" tools/bench/serve_bench.py --base-url "http://127.0.0.1:$PORT" \
  --model longview-tiny "${C8[@]}" >/dev/null 2>&1  # warm-up, discarded
for r in 1 2 3; do
  serve_bench "serve_bench_c8_r$r" "${C8[@]}"
  guidellm_c8 "guidellm_c8_r$r"
done
stop_server
args=()
for r in 1 2 3; do args+=(--serve-bench "$OUT/serve_bench_c8_r$r.json"); done
for r in 1 2 3; do args+=(--guidellm "$OUT/guidellm_c8_r$r.json"); done
"$PY" tools/bench/compare_guidellm.py "${args[@]}" > "$OUT/compare_c8.md"

# 2. 2,000 concurrent streaming requests (the server needs a file descriptor for each).
ulimit -n 16384
start_server --max-queue 4096 --num-kv-pages 8192
timeout 900 "$PY" tools/bench/serve_bench.py --base-url "http://127.0.0.1:$PORT" \
  --model longview-tiny --num-prompts 64 --random-input-len 32 --random-output-len 8 \
  --max-concurrency 64 --seed 1 >/dev/null 2>&1  # warm-up, discarded
serve_bench serve_bench_c2000 --num-prompts 2000 --random-input-len 32 --random-output-len 8 \
  --max-concurrency 2000 --seed 0 --timeout 600 || true  # failures are reported, not fatal
curl -s --max-time 10 "http://127.0.0.1:$PORT/metrics" | grep -E '^longview:num_(requests|preemptions)' \
  > "$OUT/serve_bench_c2000_server_metrics.txt" || true
stop_server
