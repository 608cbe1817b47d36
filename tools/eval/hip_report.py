#!/usr/bin/env python3
"""One table (markdown, stdout) and optionally one plot (PNG) of a HiP sweep
(tools/eval/hip_sweep.sh): dense and mode hip at each final top-k, with passkey, multi-key and
event-QA accuracy, their average, its difference from dense, perplexity and next-token KL
against dense, and the keys a pruned query reads (sinks + top-k + window) against the longest
task's tokens.

  .venv/bin/python tools/eval/hip_report.py docs/eval/hip-tiny > report.md
  .venv-plot/bin/python tools/eval/hip_report.py docs/eval/hip-tiny --plot out.png
"""
import argparse
import os
import re

from policy_report import load_run, pct, plot_panels, scores


def setting(settings, key):
    m = re.search(rf"\b{key}=(\S+)", settings)
    return m.group(1) if m else ""


def collect(out_dir):
    """{top_k or None for dense: (scores, settings)}"""
    runs = {}
    for name in sorted(os.listdir(out_dir)):
        folder = os.path.join(out_dir, name)
        m = re.fullmatch(r"hip_(\d+)", name)
        if not os.path.isfile(os.path.join(folder, "summary.json")) or not (m or name == "dense"):
            continue
        results, settings = load_run(folder)
        s = scores(results)
        s["longest"] = max((r.get("prompt_tokens", r.get("tokens", 0)) for r in results), default=0)
        runs[int(m.group(1)) if m else None] = (s, settings)
    return runs


def table(runs):
    dense = runs.get(None, ({}, ""))[0]
    lines = []
    for k, (_, settings) in sorted(runs.items(), key=lambda kv: kv[0] or 0):
        lines.append(f"- {'dense' if k is None else f'hip top_k {k}'}: `{settings}`")
    lines.append("")
    lines.append("| mode | top_k | keys read (sinks + top_k + window) | passkey | multi-key | "
                 "event QA | average | Δ average vs dense (points) | perplexity | "
                 "KL(dense‖hip) | errors |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in [None] + sorted(x for x in runs if x is not None):
        if k not in runs:
            continue
        s, settings = runs[k]
        delta = ("—" if k is None or "average" not in dense
                 else f"{100 * (s['average'] - dense['average']):+.1f}")
        ppl = f"{s['perplexity']:.3f}" if "perplexity" in s else "—"
        kl = f"{s['kl']:.4f}" if "kl" in s and k is not None else "—"
        if k is None:
            read = "all"
        else:
            read = int(setting(settings, "sinks")) + k + int(setting(settings, "window"))
            read = f"{read} ({100 * read / s['longest']:.0f}% of {s['longest']})" if s["longest"] else str(read)
        lines.append(f"| {'dense' if k is None else 'hip'} | {'—' if k is None else k} | {read} | "
                     f"{pct(s.get('passkey'))} | {pct(s.get('multikey'))} | "
                     f"{pct(s.get('events'))} | {pct(s.get('average'))} | {delta} | {ppl} | "
                     f"{kl} | {s['errors']} |")
    lines.append("")
    return "\n".join(lines)


def plot(runs, path, title):
    dense = runs.get(None, ({}, ""))[0]
    ks = sorted(k for k in runs if k is not None)
    series = {"hip": ([(k, runs[k][0]) for k in ks], "o", "-")}
    plot_panels(series, dense, path, title, "final top-k (tokens)", ks,
                "KL(dense‖hip), held-out text", log2_x=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", help="hip_sweep.sh's output folder")
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
