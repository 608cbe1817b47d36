#!/usr/bin/env python3
"""PNG of hip_mask_bench's JSON lines with their SDPA peer (one file, as run_gpu.sh hip writes
them): decode attention milliseconds per layer against context at batch 1 — dense (ours),
PyTorch SDPA, and HiP amortised over its refresh intervals (a pruned layer, and the mean over
Llama-3-8B's 32 layers with v1.2's 4 dense-kind ones, launched one by one and as CUDA graphs)
and recomputing every stage each step.

  .venv-plot/bin/python tools/bench/plot_hip_gpu.py docs/bench/hip-gpu/hip_mask_bench.jsonl \\
      --out docs/bench/hip-gpu/hip_decode_h200.png --title "H200, 2026-12-04"
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from plot_util import plot_args  # noqa: E402


def main():
    a, rows = plot_args(extra=lambda ap: ap.add_argument("--batch", type=int, default=1))
    hip = sorted((r for r in rows if r.get("bench") == "hip_decode" and r["batch"] == a.batch
                  and r.get("layer", "pruned") == "pruned"), key=lambda r: r["kv_len"])
    models = [r for r in rows if r.get("bench") == "hip_decode_model" and r["batch"] == a.batch]
    model = {r["kv_len"]: r["hip_ms_per_layer"] for r in models}
    graph = {r["kv_len"]: r["graph_hip_ms_per_layer"] for r in models
             if "graph_hip_ms_per_layer" in r}
    sdpa = {r["kv_len"]: r["time_ms"] for r in rows
            if r.get("impl") == "torch_sdpa" and r["batch"] == a.batch}
    t = [r["kv_len"] for r in hip]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series = [("dense (longview)", [r["dense_ms"] for r in hip], "#777777", "o"),
              ("SDPA (PyTorch)", [sdpa.get(k) for k in t], "#d08c2f", "s"),
              ("HiP, every stage each step", [r["every_step_ms"] for r in hip], "#9bb8d6", "^"),
              ("HiP pruned layer, refresh 32/16/8", [r["hip_ms"] for r in hip], "#3b75af", "D")]
    if model:
        series.append(("HiP, 32 layers' mean (4 dense-kind)", [model.get(k) for k in t],
                       "#2a9d5c", "v"))
    if graph:
        series.append(("HiP, 32 layers' mean, CUDA graphs", [graph.get(k) for k in t],
                       "#7b3fa0", "x"))
    for name, ys, color, marker in series:
        ax.plot(t, ys, marker=marker, color=color, label=name)
    for r in models:  # the model mean's ratio to our dense kernel, above its point
        ax.annotate(f"{r['speedup_vs_dense']:.1f}x", (r["kv_len"], r["hip_ms_per_layer"]),
                    textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8,
                    color="#2a9d5c")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(t, [f"{k // 1024}k" for k in t])
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel(f"decode attention ms per layer (batch {a.batch})")
    ax.set_title(a.title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)


if __name__ == "__main__":
    main()
