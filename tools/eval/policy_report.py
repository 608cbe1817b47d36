#!/usr/bin/env python3
"""One table (markdown, stdout) and optionally one plot (PNG) of a KV-policy sweep
(tools/eval/policy_sweep.sh): dense and every policy at each budget, with passkey, multi-key
and event-QA accuracy, their average (the suite's average), its difference from dense,
perplexity and next-token KL against dense.

  .venv/bin/python tools/eval/policy_report.py docs/eval/kv-policies-tiny > report.md
  .venv-plot/bin/python tools/eval/policy_report.py docs/eval/kv-policies-tiny --plot out.png
"""
import argparse
import json
import os
import re

TASKS = ("passkey", "multikey", "events")
POLICIES = ("streaming", "h2o", "snapkv", "lazy")
# Distinct markers and dashes, so that policies with equal scores stay visible.
STYLES = {"streaming": ("o", "-"), "h2o": ("s", "--"), "snapkv": ("^", "-"), "lazy": ("D", ":")}


def load_run(folder):
    results = []
    with open(os.path.join(folder, "results.jsonl"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                results.append(json.loads(line))
    with open(os.path.join(folder, "summary.json"), encoding="utf-8") as f:
        settings = json.load(f)["settings"]
    return results, settings


def scores(results):
    """Per task its mean accuracy, the average over the tasks present, perplexity and KL."""
    s = {}
    for t in TASKS:
        rs = [r for r in results if r["task"] == t]
        if rs:
            s[t] = sum(bool(r.get("correct")) for r in rs) / len(rs)
    present = [s[t] for t in TASKS if t in s]
    s["average"] = sum(present) / len(present) if present else float("nan")
    pp = [r for r in results if r["task"] == "perplexity" and "error" not in r]
    if pp:
        r = max(pp, key=lambda r: r["tokens"])
        s["perplexity"] = r["perplexity"]
        s["kl"] = r.get("kl_vs_dense", 0.0)
        s["ppl_tokens"] = r["tokens"] + 1
    s["errors"] = sum(1 for r in results if "error" in r)
    budgets = [r.get("kv_budget") for r in results if r.get("kv_budget")]
    s["budgets"] = (min(budgets), max(budgets)) if budgets else None
    return s


def collect(out_dir):
    runs = {}
    for name in sorted(os.listdir(out_dir)):
        folder = os.path.join(out_dir, name)
        if not os.path.isfile(os.path.join(folder, "summary.json")):
            continue
        m = re.fullmatch(r"(\w+?)_([0-9.]+)", name)
        key = ("dense", 1.0) if name == "dense" else (m.group(1), float(m.group(2))) if m else None
        if key is None:
            continue
        results, settings = load_run(folder)
        runs[key] = (scores(results), settings)
    return runs


def pct(x):
    return "—" if x is None else f"{100 * x:.0f}%"


def table(runs):
    dense = runs.get(("dense", 1.0), ({}, ""))[0]
    lines = []
    if ("dense", 1.0) in runs:
        lines.append(f"Dense run: `{runs[('dense', 1.0)][1]}`")
        lines.append("")
    lines.append("| policy | budget | passkey | multi-key | event QA | average | Δ average vs "
                 "dense (points) | perplexity | KL(dense‖policy) | errors |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    order = [("dense", 1.0)] + [(p, f) for f in (0.5, 0.25, 0.1) for p in POLICIES]
    for key in order:
        if key not in runs:
            continue
        s = runs[key][0]
        delta = ("—" if key[0] == "dense" or "average" not in dense
                 else f"{100 * (s['average'] - dense['average']):+.1f}")
        ppl = f"{s['perplexity']:.3f}" if "perplexity" in s else "—"
        kl = f"{s['kl']:.4f}" if "kl" in s and key[0] != "dense" else "—"
        budget = "all" if key[0] == "dense" else f"{100 * key[1]:.0f}%"
        lines.append(f"| {key[0]} | {budget} | {pct(s.get('passkey'))} | "
                     f"{pct(s.get('multikey'))} | {pct(s.get('events'))} | "
                     f"{pct(s.get('average'))} | {delta} | {ppl} | {kl} | {s['errors']} |")
    lines.append("")
    # The goal of issue 14: the best policy at 25% within 5 points of dense.
    at25 = [(runs[(p, 0.25)][0]["average"], p) for p in POLICIES if (p, 0.25) in runs]
    if at25 and "average" in dense:
        best, name = max(at25)
        lines.append(f"Best policy at a 25% budget: {name}, average {pct(best)} against dense "
                     f"{pct(dense['average'])} ({100 * (best - dense['average']):+.1f} points; "
                     "goal: within 5).")
        lines.append("")
    return "\n".join(lines)


PANEL_NAMES = {"passkey": "Passkey", "multikey": "Multi-key recall", "events": "Event QA",
               "average": "Suite average"}


def plot_panels(series, dense, path, title, xlabel, xticks, kl_name, log2_x=False):
    """One panel per task present in `dense`, the average and KL: each series (label ->
    ([(x, scores)], marker, dash)) as a line, dense's accuracy as a dashed level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [t for t in TASKS if t in dense] + ["average", "kl"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4))
    for ax, panel in zip(axes, panels):
        for label, (points, marker, dash) in series.items():
            pts = [(x, s.get(panel)) for x, s in sorted(points, key=lambda p: p[0])]
            pts = [(x, v) for x, v in pts if v is not None]
            if pts:
                ax.plot([x for x, _ in pts], [v if panel == "kl" else 100 * v for _, v in pts],
                        marker=marker, linestyle=dash, markersize=7 if marker == "o" else 5,
                        label=label)
        if panel != "kl" and panel in dense:
            ax.axhline(100 * dense[panel], color="black", linestyle="--", label="dense")
        ax.set_title(kl_name if panel == "kl" else PANEL_NAMES[panel], fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("KL (nats/token)" if panel == "kl" else "accuracy (%)")
        if panel != "kl":
            ax.set_ylim(-3, 105)
        if log2_x:
            ax.set_xscale("log", base=2)
        ax.set_xticks(xticks, [str(x) for x in xticks])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot(runs, path, title):
    dense = runs.get(("dense", 1.0), ({}, ""))[0]
    series = {p: ([(100 * f, runs[(q, f)][0]) for (q, f) in runs if q == p],) + STYLES[p]
              for p in POLICIES}
    plot_panels(series, dense, path, title, "KV budget (% of the task's tokens)", [10, 25, 50],
                "KL(dense‖policy), held-out text")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="policy_sweep.sh's output folder")
    ap.add_argument("--plot", default=None, help="PNG to write (needs matplotlib)")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    runs = collect(args.out_dir)
    print(table(runs))
    if args.plot:
        plot(runs, args.plot, args.title or os.path.basename(os.path.normpath(args.out_dir)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
