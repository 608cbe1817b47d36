#!/usr/bin/env python3
"""Peer of prefill_attention_bench: PyTorch SDPA (causal) and flex_attention (sliding window).

Same shapes (one sequence of T = 4k / 16k / 32k tokens, 32 query / 8 KV heads, head_dim 128,
bf16; causal dense, and a 4096-token sliding window with 0 and 4 sinks) and the same timing
method (CUDA events around each call, median of many runs after warm-up, queries rotated over
two buffers). Prints one JSON line per shape with the fields prefill_attention_bench prints.
Dense shapes run SDPA (is_causal=True, enable_gqa=True); window shapes run
torch.nn.attention.flex_attention compiled with torch.compile and a block mask built once per
shape (as users run it; mask construction and compilation are outside the timing). The peers
read contiguous, already rotated K/V: no pages, no RoPE.

    python3 tools/bench/prefill_attention_peer.py [--iters 20] [--warmup 3]
                                                  [--causal 32768,131072]  (SDPA causal only, at these T)
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from peer_timing import time_cuda

HQ, HKV, D, ROTATIONS = 32, 8, 128, 2

_flex = torch.compile(flex_attention)


def attended_pairs(T, window, sinks):
    if window <= 0:
        return 0.5 * T * T  # SDPA's FLOP convention, as the bench
    pairs = 0
    for t in range(T):
        pairs += min(t + 1, window) + max(0, min(sinks, t - window + 1))
    return pairs


def run(T, window, sinks, iters, warmup):
    torch.manual_seed(4321 + T)
    dev = "cuda"
    k = torch.randn(1, HKV, T, D, device=dev, dtype=torch.bfloat16)
    v = torch.randn(1, HKV, T, D, device=dev, dtype=torch.bfloat16)
    qs = [torch.randn(1, HQ, T, D, device=dev, dtype=torch.bfloat16) for _ in range(ROTATIONS)]
    if window <= 0:
        impl = "torch_sdpa"

        def step(i):
            return F.scaled_dot_product_attention(qs[i % ROTATIONS], k, v, is_causal=True,
                                                  enable_gqa=True)
    else:
        impl = "flex_attention"

        def mask_mod(b, h, q_idx, kv_idx):
            causal = q_idx >= kv_idx
            in_window = q_idx - kv_idx < window
            return causal & (in_window | (kv_idx < sinks))

        block_mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=T, KV_LEN=T, device=dev)

        def step(i):
            return _flex(qs[i % ROTATIONS], k, v, block_mask=block_mask, enable_gqa=True)

    times, out = time_cuda(step, iters, warmup)
    median = times[iters // 2]
    flops = 4.0 * D * HQ * attended_pairs(T, window, sinks)
    print(json.dumps({
        "bench": "prefill_attention", "impl": impl,
        "mask": "sliding_window" if window > 0 else "causal", "T": T, "window": window,
        "sinks": sinks, "num_q_heads": HQ, "num_kv_heads": HKV, "head_dim": D, "dtype": "bf16",
        "page_size": 0, "time_ms": round(median, 5), "min_ms": round(times[0], 5),
        "tflops": round(flops / (median * 1e-3) / 1e12, 2), "iters": iters,
        "nan_outputs": int(torch.isnan(out).sum().item()), "torch": torch.__version__}),
        flush=True)
    del k, v, qs, out
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--causal", default="", help="comma-separated T: dense causal SDPA only")
    args = ap.parse_args()
    if args.causal:
        for T in (int(t) for t in args.causal.split(",")):
            run(T, 0, 0, args.iters, args.warmup)
        return
    for T in (4096, 16384, 32768):
        for window, sinks in ((0, 0), (4096, 0), (4096, 4)):
            run(T, window, sinks, args.iters, args.warmup)


if __name__ == "__main__":
    main()
