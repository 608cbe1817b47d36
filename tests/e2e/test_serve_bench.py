"""Smoke test of the serving benchmark client tools/bench/serve_bench.py.

Starts the real binary ($LONGVIEW_BINARY) with the golden Llama checkpoint on a free loopback
port (--port 0; the bound port is read from its stderr), runs serve_bench.py against it with a
few prompts in both prompt formats, and checks its JSON: every request succeeded with the asked
lengths, throughputs are positive, and every request's TTFT <= E2EL.

Run: tools/python_env.sh && LONGVIEW_BINARY=build/server/longview \
     .venv/bin/python -m pytest -q tests/e2e/test_serve_bench.py
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from longview_server import LongviewServer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("LONGVIEW_BINARY", os.path.join(ROOT, "build", "server", "longview"))
DATA = os.environ.get("LONGVIEW_TEST_DATA_DIR", os.path.join(ROOT, "tests", "data"))
MODEL_DIR = os.path.join(DATA, "golden", "llama")
MODEL = "golden-llama"
KEY = "sk-bench-test-key"
VOCAB = 512  # vocab_size of the golden Llama
BENCH = os.path.join(ROOT, "tools", "bench", "serve_bench.py")


@pytest.fixture(scope="module")
def server():
    s = LongviewServer(BINARY, MODEL_DIR, "--grpc-port", "0", "--api-key", KEY,
                       "--served-model-name", MODEL, "--threads", "2")
    yield s.port
    assert s.stop() == 0, "".join(s.log)


def run_bench(port, tmp_path, *extra, key=KEY):
    out = tmp_path / "result.json"
    r = subprocess.run(
        [sys.executable, BENCH, "--base-url", f"http://127.0.0.1:{port}", "--model", MODEL,
         "--api-key", key, "--vocab-size", str(VOCAB), "--seed", "7", "--timeout", "120",
         "--result-file", str(out), *extra],
        capture_output=True, text=True, timeout=300)
    result = json.loads(out.read_text()) if out.exists() else None
    return r, result


def check_result(r, result, n, output_len):
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Serving Benchmark Result" in r.stdout
    assert result["completed"] == n and result["failed"] == 0
    assert result["duration"] > 0
    assert result["request_throughput"] > 0
    assert result["output_throughput"] > 0
    assert result["total_token_throughput"] > result["output_throughput"]
    assert result["total_output_tokens"] == n * output_len
    assert len(result["requests"]) == n
    for rec in result["requests"]:
        assert rec["success"], rec
        assert rec["output_tokens"] == output_len
        assert 0 < rec["ttft_ms"] <= rec["e2el_ms"], rec
        assert rec["chunks"] >= 1 and len(rec["itl_ms"]) == rec["chunks"] - 1
        assert all(g >= 0 for g in rec["itl_ms"])
        assert rec["tpot_ms"] is not None and rec["tpot_ms"] >= 0
    for name in ("ttft", "tpot", "itl", "e2el"):
        assert result[f"mean_{name}_ms"] >= 0
        assert result[f"median_{name}_ms"] <= result[f"p99_{name}_ms"] + 1e-9
    assert result["mean_ttft_ms"] <= result["mean_e2el_ms"]


def test_token_id_prompts_with_max_concurrency(server, tmp_path):
    r, result = run_bench(server, tmp_path, "--num-prompts", "8", "--random-input-len", "32",
                          "--random-output-len", "8", "--max-concurrency", "4")
    check_result(r, result, 8, 8)
    # Token-id prompts are used verbatim: input lengths are exact.
    assert all(rec["prompt_tokens"] == 32 for rec in result["requests"])
    assert result["config"]["max_concurrency"] == 4
    assert 1 <= result["peak_concurrent_requests"] <= 4
    for rec in result["requests"]:
        assert rec["start_s"] <= rec["end_s"] <= result["duration"] + 1e-6


def test_word_prompts_at_a_poisson_rate_with_range_ratio(server, tmp_path):
    r, result = run_bench(server, tmp_path, "--num-prompts", "8", "--random-input-len", "24",
                          "--random-output-len", "6", "--random-range-ratio", "0.5",
                          "--prompt-format", "words", "--request-rate", "50")
    assert r.returncode == 0, r.stdout + r.stderr
    assert result["completed"] == 8 and result["failed"] == 0
    for rec in result["requests"]:
        assert 3 <= rec["expected_output_len"] <= 9
        assert rec["output_tokens"] == rec["expected_output_len"]
        assert rec["prompt_tokens"] >= rec["expected_input_len"]  # words >= 1 token, plus BOS
        assert 0 < rec["ttft_ms"] <= rec["e2el_ms"]
    # Poisson arrivals: the requests did not all start at once.
    starts = sorted(rec["start_s"] for rec in result["requests"])
    assert starts[-1] - starts[0] > 0.01


def test_wrong_api_key_fails_cleanly(server, tmp_path):
    r, result = run_bench(server, tmp_path, "--num-prompts", "2", "--random-input-len", "8",
                          "--random-output-len", "2", key="sk-wrong")
    assert r.returncode != 0
    assert "HTTP 401" in r.stderr + r.stdout
    assert result is None


def test_refuses_a_non_loopback_server(tmp_path):
    r = subprocess.run([sys.executable, BENCH, "--base-url", "http://192.0.2.1:8000",
                        "--num-prompts", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "not a loopback address" in r.stderr
