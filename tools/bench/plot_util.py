"""What the GPU benchmarks' plot scripts (tools/bench/plot_*.py) share: their command line
(a JSON-lines file, --out PNG, --title) and the file's rows.

    args, rows = plot_args(extra=lambda ap: ap.add_argument("--batch", type=int, default=1))
"""
import argparse
import json


def plot_args(extra=None):
    """Parses `jsonl --out PNG [--title T]` (plus what `extra(parser)` adds); returns the
    arguments and the file's JSON rows in order."""
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="")
    if extra is not None:
        extra(ap)
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.jsonl, encoding="utf-8") if line.strip()]
    return a, rows
