"""End to end: the KV tiers below the device pool through the real `longview serve` (CPU
backend, the embedded model, a real RocksDB in a temporary folder), with the official openai
package.

  * A long prompt pushed out of a small device pool (--num-kv-pages) by two others and sent
    again is served from the host tier: identical output, >= 90% of its tokens cached
    (usage.prompt_tokens_details.cached_tokens), host promotions in /metrics.
  * After a restart with the same disk path and no host tier, it is served from disk.
  * kill -9 while pages are being written, then a restart: every answer equals the reference
    (nothing corrupt is served).
  * Garbled RocksDB blob files: pages fail their checksums, are counted and recomputed; output
    identical, the server serving.

Run: LONGVIEW_BINARY=build/server/longview .venv/bin/python -m pytest -q tests/e2e/test_kv_tiers.py
"""
import glob
import http.client
import os
import random
import signal
import sys
import tempfile
import time

import openai
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from longview_server import LongviewServer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("LONGVIEW_BINARY", os.path.join(ROOT, "build", "server", "longview"))
MODEL = os.path.join(ROOT, "models", "longview-tiny")
PROMPT_TOKENS = 1000
# 1,280 tokens of device pool: one 1,000-token prompt and its answer at a time.
POOL = ["--num-kv-pages", "80", "--page-size", "16", "--threads", "2", "--grpc-port", "0",
        "--max-num-seqs", "4"]


def prompt(seed):
    rng = random.Random(seed)
    return [1] + [rng.randrange(3, 8000) for _ in range(PROMPT_TOKENS - 1)]


def serve(*extra):
    return LongviewServer(BINARY, MODEL, *POOL, *extra)


def client(server):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="none",
                         max_retries=0, timeout=120)


def complete(c, ids):
    r = c.completions.create(model=MODEL, prompt=ids, max_tokens=16, temperature=0, logprobs=0)
    cached = r.usage.prompt_tokens_details.cached_tokens if r.usage.prompt_tokens_details else 0
    return r.choices[0].text, r.choices[0].logprobs.token_logprobs, cached


def metrics(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("longview:kv_tier_"):
            name, value = line.rsplit(" ", 1)
            metric = name.split("{")[0][len("longview:"):]
            tier = name.split('tier="')[1].split('"')[0]
            out[(metric, tier)] = float(value)
    return out


def same(a, b):
    assert a[0] == b[0]
    assert len(a[1]) == len(b[1])
    for x, y in zip(a[1], b[1]):
        assert abs(x - y) < 1e-3, (a[1], b[1])


@pytest.fixture(scope="module")
def reference():
    """Answers of a server without tiers and a pool large enough for everything."""
    s = LongviewServer(BINARY, MODEL, "--threads", "2", "--grpc-port", "0")
    try:
        c = client(s)
        return {seed: complete(c, prompt(seed)) for seed in range(1, 9)}
    finally:
        assert s.stop() == 0, "".join(s.log)


def test_host_then_disk_after_restart(reference):
    disk = tempfile.mkdtemp(prefix="lv_kv_disk_")
    s = serve("--kv-host-memory-gib", "0.05", "--kv-disk-path", disk, "--kv-disk-gib", "1")
    try:
        c = client(s)
        first = complete(c, prompt(1))
        same(first, reference[1])
        assert first[2] == 0
        complete(c, prompt(2))  # pushes prompt 1's pages out of the device pool
        complete(c, prompt(3))
        again = complete(c, prompt(1))
        same(again, reference[1])
        assert again[2] >= 0.9 * PROMPT_TOKENS, again[2]
        m = metrics(s)
        assert m[("kv_tier_promoted_pages_total", "host")] >= 56
        assert m[("kv_tier_promoted_pages_total", "disk")] == 0
        assert m[("kv_tier_demoted_pages_total", "disk")] >= 56  # written through
    finally:
        assert s.stop() == 0, "".join(s.log)
    # A new process, no host tier: prompt 1 comes from disk.
    s = serve("--kv-disk-path", disk, "--kv-disk-gib", "1")
    try:
        assert any("pages of this model found" in line for line in s.log), "".join(s.log)
        c = client(s)
        again = complete(c, prompt(1))
        same(again, reference[1])
        assert again[2] >= 0.9 * PROMPT_TOKENS, again[2]
        m = metrics(s)
        assert m[("kv_tier_promoted_pages_total", "disk")] >= 56
        assert m[("kv_tier_checksum_failures_total", "disk")] == 0
    finally:
        assert s.stop() == 0, "".join(s.log)


def test_another_model_never_reads_the_pages(reference):
    disk = tempfile.mkdtemp(prefix="lv_kv_disk_")
    s = serve("--kv-disk-path", disk, "--kv-disk-gib", "1")
    try:
        c = client(s)
        complete(c, prompt(1))
        complete(c, prompt(2))
        complete(c, prompt(3))
    finally:
        assert s.stop() == 0, "".join(s.log)
    # Another page size: another KV layout, another namespace; nothing found, nothing served.
    s = LongviewServer(BINARY, MODEL, "--num-kv-pages", "40", "--page-size", "32", "--threads",
                       "2", "--grpc-port", "0", "--kv-disk-path", disk, "--kv-disk-gib", "1")
    try:
        assert any(" 0 pages of this model found" in line for line in s.log), "".join(s.log)
        got = complete(client(s), prompt(1))
        same(got, reference[1])
        assert got[2] == 0
    finally:
        assert s.stop() == 0, "".join(s.log)


def test_kill_9_during_writes_then_restart_serves_nothing_corrupt(reference):
    disk = tempfile.mkdtemp(prefix="lv_kv_disk_")
    s = serve("--kv-disk-path", disk, "--kv-disk-gib", "1")
    c = client(s)
    for seed in range(1, 5):
        complete(c, prompt(seed))
    # A fifth prompt evicts pages while its request runs: kill the server mid-way.
    import threading
    threading.Thread(target=lambda: _swallow(lambda: complete(c, prompt(5))), daemon=True).start()
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    s = serve("--kv-disk-path", disk, "--kv-disk-gib", "1")
    try:
        c = client(s)
        for seed in range(1, 6):
            got = complete(c, prompt(seed))
            same(got, reference[seed])
        m = metrics(s)
        # Pages written before the kill are served (prompts 1-3 were pushed out by 2-4).
        assert m[("kv_tier_promoted_pages_total", "disk")] >= 56, m
    finally:
        assert s.stop() == 0, "".join(s.log)


def _swallow(f):
    try:
        f()
    except Exception:
        pass


def test_garbled_blob_files_are_detected_and_recomputed(reference):
    disk = tempfile.mkdtemp(prefix="lv_kv_disk_")
    s = serve("--kv-disk-path", disk, "--kv-disk-gib", "1")
    try:
        c = client(s)
        for seed in (1, 2, 3):
            complete(c, prompt(seed))
    finally:
        assert s.stop() == 0, "".join(s.log)
    # Flip bytes all through the page values (blob files; SST files too where values live).
    files = glob.glob(os.path.join(disk, "*.blob")) or glob.glob(os.path.join(disk, "*.sst"))
    assert files, os.listdir(disk)
    for path in files:
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            for off in range(4096, max(size - 4096, 4096), 65536):
                f.seek(off)
                b = f.read(1)
                f.seek(off)
                f.write(bytes([b[0] ^ 0x5A]) if b else b"\x00")
    s = serve("--kv-disk-path", disk, "--kv-disk-gib", "1")
    try:
        c = client(s)
        got = complete(c, prompt(1))
        same(got, reference[1])
        m = metrics(s)
        assert m[("kv_tier_checksum_failures_total", "disk")] >= 1, m
        # Still serving.
        same(complete(c, prompt(4)), reference[4])
    finally:
        assert s.stop() == 0, "".join(s.log)
