#!/usr/bin/env python3
"""PNG of kv_tier_gpu_bench's JSON lines: time to first token of the 32k prompt from each tier
beside recomputing it, and page-move GB/s beside the plain pinned copy.

  .venv-plot/bin/python tools/bench/plot_kv_tiers_gpu.py docs/bench/kv_tiers_gpu/kv_tier_gpu_bench.jsonl \\
      --out docs/bench/kv_tiers_gpu/kv_tiers_gpu.png --title "H200, 2026-12-03"
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from plot_util import plot_args  # noqa: E402


def main():
    a, lines = plot_args()
    rows = {r["bench"]: r for r in lines}
    t, m = rows["ttft"], rows["page_moves"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = ["recompute", "host (checked beside the copy)", "host (--kv-host-verify false)", "disk (cold)"]
    values = [t["recompute_ms"], t["host_ms"], t["host_noverify_ms"], t["disk_ms"]]
    bars = ax1.barh(names, values, color=["grey", "tab:blue", "tab:cyan", "tab:orange"])
    for b, v in zip(bars, values):
        ax1.text(v, b.get_y() + b.get_height() / 2, f" {v:.0f} ms ({v / values[0]:.2f}x)",
                 va="center", fontsize=8)
    ax1.axvline(0.1 * values[0], color="tab:blue", ls=":", lw=1, label="goal host 0.1x")
    ax1.axvline(0.5 * values[0], color="tab:orange", ls=":", lw=1, label="goal disk 0.5x")
    ax1.set_xlim(0, max(values) * 1.45)
    ax1.set_xlabel(f"time to first token, {t['context']}-token prompt, Llama-3-8B shape (ms)")
    ax1.legend(fontsize=7, loc="upper right")
    ax1.invert_yaxis()
    labels = ["host->device", "device->host"]
    x = range(2)
    plain = [m["h2d_plain_gbps"], m["d2h_plain_gbps"]]
    tier = [m["h2d_tier_gbps"], m["d2h_tier_gbps"]]
    ax2.bar([i - 0.2 for i in x], plain, 0.4, label="one pinned cudaMemcpyAsync", color="grey")
    ax2.bar([i + 0.2 for i in x], tier, 0.4, label="tier page moves (2 MiB pages)",
            color="tab:blue")
    for i in x:
        ax2.text(i + 0.2, tier[i], f"{tier[i] / plain[i]:.2f}x", ha="center", va="bottom",
                 fontsize=8)
    ax2.set_xticks(list(x), labels)
    ax2.set_ylabel("GB/s")
    ax2.legend(fontsize=7, loc="lower right")
    if a.title:
        fig.suptitle(a.title)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
