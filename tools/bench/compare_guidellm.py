#!/usr/bin/env python3
"""Prints a markdown table comparing serve_bench.py result files with a guidellm JSON report.

  .venv/bin/python tools/bench/compare_guidellm.py --serve-bench a.json [--serve-bench b.json] \
      --guidellm guidellm.json [--guidellm guidellm2.json]

The two tools name per-token latencies differently; rows are matched by definition:

  vLLM / serve_bench TPOT  = (E2EL - TTFT) / (output_tokens - 1)   = guidellm "ITL"
  guidellm "TPOT"          = E2EL / output_tokens                   (serve_bench: from its records)
  serve_bench ITL          = gaps between streamed chunks (guidellm has no per-gap figure)

guidellm's request latency ends when the response is closed; serve_bench's E2EL at the last
text chunk (vLLM's definition), so guidellm's is longer by the [DONE] and usage chunks.
Only the standard library is used.
"""
import argparse
import json
import math
import statistics


def pct(values, p):
    v = sorted(values)
    if not v:
        return math.nan
    k = (len(v) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def serve_bench_column(path):
    d = json.load(open(path))
    ok = [r for r in d["requests"] if r["success"]]
    guidellm_tpot = [r["e2el_ms"] / r["output_tokens"] for r in ok if r["output_tokens"]]
    c = {
        "requests ok / failed": f"{d['completed']} / {d['failed']}",
        "duration (s)": d["duration"],
        "input tokens per request (mean)": d["total_input_tokens"] / max(d["completed"], 1),
        "output tokens per request (mean)": d["total_output_tokens"] / max(d["completed"], 1),
        "request throughput (req/s)": d["request_throughput"],
        "output token throughput (tok/s)": d["output_throughput"],
        "total token throughput (tok/s)": d["total_token_throughput"],
    }
    for stat in ("mean", "median", "p99"):
        c[f"TTFT {stat} (ms)"] = d[f"{stat}_ttft_ms"]
    for stat in ("mean", "median", "p99"):
        c[f"TPOT vLLM = ITL guidellm, {stat} (ms)"] = d[f"{stat}_tpot_ms"]
    for stat, fn in (("mean", statistics.fmean), ("median", statistics.median),
                     ("p99", lambda v: pct(v, 99))):
        c[f"E2EL / output tokens = TPOT guidellm, {stat} (ms)"] = fn(guidellm_tpot)
    for stat in ("mean", "median", "p99"):
        c[f"ITL per chunk gap, {stat} (ms)"] = d[f"{stat}_itl_ms"]
    for stat in ("mean", "median", "p99"):
        c[f"E2EL {stat} (ms)"] = d[f"{stat}_e2el_ms"]
    return c


def guidellm_column(path):
    d = json.load(open(path))
    if len(d["benchmarks"]) != 1:
        raise SystemExit(f"{path}: expected one benchmark, found {len(d['benchmarks'])}")
    b = d["benchmarks"][0]
    m = b["metrics"]

    def stat(name, s, scale=1.0):
        dist = m[name]["successful"]
        v = dist["mean"] if s == "mean" else dist["median"] if s == "median" else \
            dist["percentiles"]["p99"]
        return v * scale

    totals = m["request_totals"]
    ok = totals["successful"]
    duration = b["duration"]
    in_tok = m["prompt_token_count"]["successful"]["total_sum"]
    out_tok = m["output_token_count"]["successful"]["total_sum"]
    c = {
        "requests ok / failed": f"{ok} / {totals['errored'] + totals['incomplete']}",
        "duration (s)": duration,
        "input tokens per request (mean)": in_tok / max(ok, 1),
        "output tokens per request (mean)": out_tok / max(ok, 1),
        "request throughput (req/s)": ok / duration,
        "output token throughput (tok/s)": out_tok / duration,
        "total token throughput (tok/s)": (in_tok + out_tok) / duration,
    }
    for s in ("mean", "median", "p99"):
        c[f"TTFT {s} (ms)"] = stat("time_to_first_token_ms", s)
    for s in ("mean", "median", "p99"):
        c[f"TPOT vLLM = ITL guidellm, {s} (ms)"] = stat("inter_token_latency_ms", s)
    for s in ("mean", "median", "p99"):
        c[f"E2EL / output tokens = TPOT guidellm, {s} (ms)"] = stat("time_per_output_token_ms", s)
    for s in ("mean", "median", "p99"):
        c[f"ITL per chunk gap, {s} (ms)"] = None
    for s in ("mean", "median", "p99"):
        c[f"E2EL {s} (ms)"] = stat("request_latency", s, 1000.0)
    return c


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.1f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--serve-bench", action="append", required=True)
    p.add_argument("--guidellm", action="append", required=True)
    a = p.parse_args()
    cols = [(f"serve_bench ({path.rsplit('/', 1)[-1]})", serve_bench_column(path))
            for path in a.serve_bench]
    cols += [(f"guidellm ({path.rsplit('/', 1)[-1]})", guidellm_column(path))
             for path in a.guidellm]
    print("| figure | " + " | ".join(name for name, _ in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for key in cols[0][1]:
        print(f"| {key} | " + " | ".join(fmt(c[key]) for _, c in cols) + " |")


if __name__ == "__main__":
    main()
