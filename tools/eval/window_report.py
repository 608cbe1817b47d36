#!/usr/bin/env python3
"""One markdown report across several run_eval.py output folders (one attention setting each):
passkey accuracy by length x depth, perplexity per position along the held-out texts (buckets x
settings), and the next-token KL against dense per position.

  python3 tools/eval/window_report.py OUT/dense OUT/sw256_s0 ... [--bucket 512] [--long-bucket 2048]

Buckets are merged from the measured ones (sums of NLL, KL and tokens), so --bucket must be a
multiple of the measured bucket size.
"""
import argparse
import json
import math
import os


def load(folder):
    with open(os.path.join(folder, "results.jsonl"), encoding="utf-8") as f:
        rs = [json.loads(line) for line in f if line.strip()]
    r0 = rs[0]
    label = ("dense" if r0["attention_mode"] == "dense"
             else f"W={r0['window']} sinks={r0['sinks']}")
    return label, rs


def merge(buckets, size):
    out = {}
    for b in buckets:
        start = b["start"] // size * size
        m = out.setdefault(start, {"start": start, "end": start + size, "tokens": 0, "nll": 0.0,
                                   "nll_dense": 0.0, "kl": 0.0, "has_dense": "kl_vs_dense" in b})
        m["tokens"] += b["tokens"]
        m["nll"] += b["nll"]
        if "kl_vs_dense" in b:
            m["nll_dense"] += b["mean_nll_dense"] * b["tokens"]
            m["kl"] += b["kl_vs_dense"] * b["tokens"]
    return [out[k] for k in sorted(out)]


def pct(xs):
    return f"{100.0 * sum(xs) / len(xs):.0f}%" if xs else "—"


def ppl_tables(runs, source, size, title, with_kl):
    cols, rows = [], {}
    for label, rs in runs:
        pp = [r for r in rs if r["task"] == "perplexity" and r.get("source") == source
              and r.get("buckets")]
        if not pp:
            continue
        cols.append(label)
        for m in merge(pp[0]["buckets"], size):
            rows.setdefault((m["start"], m["end"]), {})[label] = m
    if not cols:
        return []
    lines = [f"{title}: perplexity per position bucket (exp of the mean NLL of the tokens "
             "predicted at those positions)", "",
             "| positions | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for (s, e), row in sorted(rows.items()):
        cells = [f"{math.exp(row[c]['nll'] / row[c]['tokens']):,.0f}" if c in row else "—"
                 for c in cols]
        lines.append(f"| {s}–{e} | " + " | ".join(cells) + " |")
    lines.append("")
    kl_cols = [c for c in cols if c != "dense"]
    if with_kl and kl_cols:
        lines += [f"{title}: mean next-token KL(dense ‖ mode) per position bucket, nats", "",
                  "| positions | " + " | ".join(kl_cols) + " |",
                  "|---" * (len(kl_cols) + 1) + "|"]
        for (s, e), row in sorted(rows.items()):
            cells = [f"{row[c]['kl'] / row[c]['tokens']:.3f}"
                     if c in row and row[c]["has_dense"] else "—" for c in kl_cols]
            lines.append(f"| {s}–{e} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--bucket", type=int, default=512)
    ap.add_argument("--long-bucket", type=int, default=2048)
    a = ap.parse_args()
    runs = [load(f) for f in a.folders]
    lines = []
    lengths = sorted({r["length"] for _, rs in runs for r in rs if r["task"] == "passkey"})
    depths = sorted({r["depth"] for _, rs in runs for r in rs if r["task"] == "passkey"})
    for L in lengths:
        n = {len([r for r in rs if r["task"] == "passkey" and r["length"] == L
                  and r["depth"] == depths[0]]) for _, rs in runs}
        lines += [f"Passkey accuracy at {L} tokens by needle depth ({'/'.join(map(str, n))} "
                  "prompts per cell)", "",
                  "| setting | " + " | ".join(f"{d:.0%}" for d in depths) + " | all |",
                  "|---" * (len(depths) + 2) + "|"]
        for label, rs in runs:
            pk = [r for r in rs if r["task"] == "passkey" and r["length"] == L]
            lines.append(f"| {label} | " + " | ".join(
                pct([r["correct"] for r in pk if r["depth"] == d]) for d in depths)
                + f" | {pct([r['correct'] for r in pk])} |")
        lines.append("")
    lines += ppl_tables(runs, "heldout", a.bucket, "Held-out text (8,185 tokens)", True)
    lines += ppl_tables(runs, "heldout_long", a.long_bucket,
                        "Long held-out text (Matthew Henry, no dense pass)", False)
    errs = [(label, r) for label, rs in runs for r in rs if "error" in r]
    for label, r in errs:
        lines.append(f"error ({label}, {r['task']} {r.get('length')}): {r['error']}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
