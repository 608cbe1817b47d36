#!/usr/bin/env python3
"""Peer of e2e_decode_bench: Hugging Face `generate` on a random bf16 model in Llama-3-8B's exact
shape, same batch sizes and context, greedy, on the same GPU.

Per-step decode time = (time of generate with 1 + steps new tokens - time with 1 new token) /
steps, so the prefill is taken out the same way the bench separates it. Prints one JSON line per
batch with the fields e2e_decode_bench prints.

    python3 tools/bench/e2e_hf_peer.py [--batches 1,64,256] [--context 1024] [--steps 64]
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,64,256")
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=64)
    args = ap.parse_args()
    cfg = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                      num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                      max_position_embeddings=8192, rms_norm_eps=1e-5,
                      rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                                       "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8192},
                      tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    for b in [int(x) for x in args.batches.split(",")]:
        ids = torch.randint(3, cfg.vocab_size, (b, args.context), device="cuda")
        mask = torch.ones_like(ids)

        def gen(n):
            torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n,
                               min_new_tokens=n, do_sample=False, pad_token_id=0)
            torch.cuda.synchronize()
            return (time.perf_counter() - t) * 1e3

        try:
            gen(2)  # warm-up
            t1 = min(gen(1) for _ in range(2))
            tn = gen(1 + args.steps)
        except torch.OutOfMemoryError as e:
            print(json.dumps({"bench": "e2e_decode", "impl": "hf_generate", "batch": b,
                              "error": "out of memory: " + str(e)[:200]}), flush=True)
            torch.cuda.empty_cache()
            continue
        per_step = (tn - t1) / args.steps
        print(json.dumps({
            "bench": "e2e_decode", "impl": "hf_generate", "model": "llama3-8b-shape",
            "dtype": "bf16", "batch": b, "context": args.context, "steps": args.steps,
            "ms_per_step_mean": round(per_step, 3), "output_tok_per_s": round(b * 1e3 / per_step, 1),
            "prefill_ms": round(t1, 1), "gpu": torch.cuda.get_device_name(),
            "torch": torch.__version__}), flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
