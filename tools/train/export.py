#!/usr/bin/env python3
"""Turns a training checkpoint folder (train.py's OUT/ckpt: a sharded bf16 Hugging Face folder
plus trainer_state.json) into the shipped model folder models/<name>/ with one
model.safetensors (bf16), config.json, generation_config.json, tokenizer.model and
tokenizer_config.json. Checks that it loads with LlamaForCausalLM, fits the size limit and
generates.

  python3 tools/train/export.py --ckpt .traindata/ckpt --out models/longview-tiny
"""
import argparse
import json
import os
import shutil
import sys

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-mb", type=float, default=60.0, help="fail if model.safetensors is larger")
    ap.add_argument("--prompt", default="In the beginning")
    a = ap.parse_args()
    from transformers import GenerationConfig, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(a.ckpt, dtype=torch.bfloat16)
    os.makedirs(a.out, exist_ok=True)
    for fn in os.listdir(a.out):
        if fn.endswith(".safetensors") or fn.endswith(".safetensors.index.json"):
            os.remove(os.path.join(a.out, fn))
    model.save_pretrained(a.out, safe_serialization=True, max_shard_size="1GB")
    gen = GenerationConfig.from_pretrained(a.ckpt) if os.path.exists(
        os.path.join(a.ckpt, "generation_config.json")) else GenerationConfig(bos_token_id=1, eos_token_id=2)
    gen.save_pretrained(a.out)
    for fn in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(a.ckpt, fn), os.path.join(a.out, fn))
    st = os.path.join(a.out, "model.safetensors")
    size_mb = os.path.getsize(st) / 1e6
    if size_mb > a.max_mb:
        sys.exit(f"{st} is {size_mb:.1f} MB > {a.max_mb} MB")

    # check: loads back, bf16, generates
    import sentencepiece as spm

    m = LlamaForCausalLM.from_pretrained(a.out)
    dtypes = {str(p.dtype) for p in m.parameters()}
    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.out, "tokenizer.model"))
    ids = torch.tensor([[1] + sp.encode(a.prompt)])
    m = m.float()
    out = m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=40, do_sample=False,
                     eos_token_id=2, pad_token_id=2)
    text = sp.decode(out[0, ids.shape[1]:].tolist())
    info = {"out": a.out, "model.safetensors_mb": round(size_mb, 2), "loaded_dtypes": sorted(dtypes),
            "params": sum(p.numel() for p in m.parameters()),
            "files": sorted(os.listdir(a.out)), "prompt": a.prompt, "greedy": text}
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
