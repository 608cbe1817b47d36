#!/usr/bin/env python3
"""Peer of decode_attention_bench: PyTorch SDPA decode (q_len 1) on contiguous KV.

Same shapes (32 query / 8 KV heads, head_dim 128, bf16; B=64 T=4k, B=64 T=32k, B=1 T=32k) and the
same timing method (CUDA events around each call, median of many runs after warm-up, queries
rotated over 4 buffers). Prints one JSON line per shape with the fields decode_attention_bench
prints. The peer reads no pages and applies no RoPE: keys are stored rotated, as a framework
would hold them.

    python3 tools/bench/decode_attention_peer.py [--iters 100] [--warmup 10]
                                                 [--shapes 1x131072,1x1048576]  (BxT, else the above)
"""
import argparse
import json

import torch
import torch.nn.functional as F

from peer_timing import time_cuda

HQ, HKV, D, ROTATIONS = 32, 8, 128, 4


def run(batch, kv_len, iters, warmup):
    torch.manual_seed(1234 + batch + kv_len)
    dev = "cuda"
    k = torch.randn(batch, HKV, kv_len, D, device=dev, dtype=torch.bfloat16)
    v = torch.randn(batch, HKV, kv_len, D, device=dev, dtype=torch.bfloat16)
    qs = [torch.randn(batch, HQ, 1, D, device=dev, dtype=torch.bfloat16) for _ in range(ROTATIONS)]

    def step(i):
        return F.scaled_dot_product_attention(qs[i % ROTATIONS], k, v, is_causal=False,
                                              enable_gqa=True)

    times, out = time_cuda(step, iters, warmup)
    median = times[iters // 2]
    kv_bytes = batch * kv_len * HKV * D * 2 * 2
    print(json.dumps({
        "bench": "decode_attention", "impl": "torch_sdpa", "batch": batch, "kv_len": kv_len,
        "num_q_heads": HQ, "num_kv_heads": HKV, "head_dim": D, "dtype": "bf16",
        "page_size": 0, "time_ms": round(median, 5), "min_ms": round(times[0], 5),
        "kv_tbps": round(kv_bytes / (median * 1e-3) / 1e12, 4), "partitions": 0,
        "partition_tokens": 0, "iters": iters,
        "nan_outputs": int(torch.isnan(out).sum().item()),
        "torch": torch.__version__}), flush=True)
    del k, v, qs
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--shapes", default="64x4096,64x32768,1x32768",
                    help="comma-separated BxT (batch x keys)")
    args = ap.parse_args()
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    for batch, kv_len in shapes:
        run(batch, kv_len, args.iters, args.warmup)


if __name__ == "__main__":
    main()
