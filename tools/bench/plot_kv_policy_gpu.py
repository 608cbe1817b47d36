#!/usr/bin/env python3
"""PNG of kv_policy_gpu_bench's JSON lines: KV memory per sequence, decode throughput and
prefill time per policy (dense first), each beside dense.

  .venv-plot/bin/python tools/bench/plot_kv_policy_gpu.py \\
      docs/bench/kv_policy/kv_policy_gpu_bench_h200.jsonl \\
      --out docs/bench/kv_policy/kv_policy_gpu_h200.png --title "H200, 2026-12-03"
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from plot_util import plot_args  # noqa: E402


def main():
    a, rows = plot_args()
    rows = [r for r in rows if r.get("bench") == "kv_policy_gpu"]
    names = ["dense" if r["policy"] == "none" else r["policy"] for r in rows]
    colors = ["#777777"] + ["#3b75af"] * (len(rows) - 1)
    panels = [("kv_mib_per_seq_peak", "KV MiB per sequence (peak)"),
              ("decode_tok_per_s", "decode tokens/s (16 sequences)"),
              ("prefill_s", "prefill seconds (16 x prompt)")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (key, label) in zip(axes, panels):
        vals = [r[key] for r in rows]
        bars = ax.bar(names, vals, color=colors)
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:.3g}\n{v / vals[0]:.2f}x", (b.get_x() + b.get_width() / 2, v),
                        ha="center", va="bottom", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.set_ylim(0, max(vals) * 1.3)
        ax.tick_params(axis="x", labelsize=9)
    r0 = rows[0]
    budget = next((r["budget"] for r in rows if r["budget"] > 0), 0)
    fig.suptitle(f"KV policies, Llama-3-8B shape bf16, {r0['seqs']} x {r0['prompt']}-token prompts, "
                 f"budget {budget}, {r0['decode']} decoded tokens. {a.title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)


if __name__ == "__main__":
    main()
