#!/usr/bin/env python3
"""A PNG of one or more run_eval.py output folders (their summary.json): accuracy of passkey,
multi-key and event QA against context length, and held-out perplexity along the position of
the longest perplexity text. One line per folder, so modes and eviction policies can be laid
over the dense baseline.

  tools/python_env.sh plot
  .venv-plot/bin/python tools/eval/plot_eval.py docs/eval/smollm2-dense-full-cuda \\
      --out docs/eval/smollm2-dense-full-cuda/quality.png [--label dense] [--title TEXT]
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TASKS = (("passkey", "Passkey (all depths)"), ("multikey", "Multi-key recall"),
         ("events", "Event-stream QA"))


def load(folder):
    with open(os.path.join(folder, "summary.json"), encoding="utf-8") as f:
        return json.load(f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", help="run_eval.py --out-dir folders")
    ap.add_argument("--label", action="append", default=[],
                    help="one per folder, in order (default: the folder's name)")
    ap.add_argument("--title", default=None)
    ap.add_argument("--out", required=True, help="PNG to write")
    args = ap.parse_args(argv)
    if args.label and len(args.label) != len(args.folders):
        ap.error("give --label once per folder or not at all")
    labels = args.label or [os.path.basename(os.path.normpath(f)) for f in args.folders]
    runs = [(label, load(f)["summary"]) for label, f in zip(labels, args.folders)]

    fig, axes = plt.subplots(1, len(TASKS) + 1, figsize=(4.2 * (len(TASKS) + 1), 3.6))
    for ax, (key, title) in zip(axes, TASKS):
        for label, s in runs:
            cells = s.get(key) or {}
            xs = sorted(int(k) for k in cells)
            if xs:
                ax.plot(xs, [100 * cells[str(x)] for x in xs], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-5, 105)
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax = axes[-1]
    for label, s in runs:
        ppl = s.get("perplexity") or {}
        if not ppl:
            continue
        longest = max(ppl, key=int)
        buckets = ppl[longest].get("buckets") or []
        if buckets:
            ax.plot([(b["start"] + b["end"]) / 2 for b in buckets],
                     [b["perplexity"] for b in buckets], marker=".",
                     label=f"{label} ({longest} tokens: {ppl[longest]['perplexity']:.2f})")
    ax.set_xlabel("position in held-out text (tokens)")
    ax.set_ylabel("perplexity per bucket")
    ax.set_title("Held-out perplexity by position")
    ax.grid(alpha=0.3)
    for ax in (axes[0], axes[-1]):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
