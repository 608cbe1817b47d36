#!/usr/bin/env python3
"""Compares two bundles' benchmark runs written by deploy/ab_gpu.sh: per benchmark case, the
median time of each bundle over its rounds, the spread between rounds of the same bundle (the
noise) and the B/A ratio. Prints a Markdown table.

    tools/bench/ab_summary.py OUT/ab base-bundle head-bundle
"""
import glob
import json
import os
import statistics
import sys

# The figure compared per benchmark (lower is better) and the fields naming a case.
METRIC = {
    "decode_attention_bench": ("time_ms", ["batch", "kv_len"]),
    "prefill_attention_bench": ("time_ms", ["mask", "T", "window", "sinks"]),
    "e2e_decode_bench": ("ms_per_step_median", ["batch", "context"]),
}


def load(folder, label, bench):
    """case -> [value per round]"""
    out = {}
    metric, keys = METRIC[bench]
    for path in sorted(glob.glob(os.path.join(folder, f"{label}_{bench}_r*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                row = json.loads(line)
                if metric not in row:
                    continue
                case = " ".join(f"{k}={row.get(k)}" for k in keys)
                out.setdefault(case, []).append(float(row[metric]))
    return out


def spread(values):
    """(max - min) / median over rounds: how much the same binary moves between rounds."""
    if len(values) < 2:
        return float("nan")
    return (max(values) - min(values)) / statistics.median(values)


def main():
    folder, a, b = sys.argv[1:4]
    print(f"| benchmark | case | {a} (median) | {b} (median) | {b}/{a} | noise {a} | noise {b} |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for bench, (metric, _) in METRIC.items():
        ra, rb = load(folder, a, bench), load(folder, b, bench)
        for case in ra:
            if case not in rb:
                continue
            ma, mb = statistics.median(ra[case]), statistics.median(rb[case])
            ratio = mb / ma if ma > 0 else float("nan")
            worst = max(worst, ratio)
            print(f"| {bench} ({metric}) | {case} | {ma:.4f} | {mb:.4f} | {ratio:.3f} | "
                  f"{spread(ra[case]):.1%} | {spread(rb[case]):.1%} |")
    print(f"\nworst {b}/{a} ratio: {worst:.3f}")


if __name__ == "__main__":
    main()
