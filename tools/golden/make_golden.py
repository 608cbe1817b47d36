#!/usr/bin/env python3
"""Builds the golden checkpoints the CPU engine is tested against.

Runs where PyTorch, transformers and the sentencepiece module are installed (the GPU machine:
PyTorch 2.11, transformers 5.17). For each architecture it builds a small seeded random model
with transformers, saves it with save_pretrained (safetensors) beside the shared test tokenizer,
and writes golden.safetensors with, per prompt: the input ids, float32 logits at every position,
and a 64-token greedy continuation. References are computed on the CPU in float64 from weights
that were first rounded to the storage dtype, so the only difference left to the engine is its
own float32 arithmetic.

Usage:  python3 tools/golden/make_golden.py --out tests/data/golden
        python3 tools/golden/make_golden.py --gpu-shapes --out tests/data/golden_gpu
--gpu-shapes builds the same three architectures with head dims the CUDA kernels dispatch
(llama 128 with hidden 256, so head_dim != hidden / heads; mistral and qwen2 64) for the CUDA
backend's parity tests.
"""
import argparse
import json
import os
import shutil

import sentencepiece as spm
import torch
from safetensors.torch import save_file
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZER_DIR = os.path.join(ROOT, "tests", "data", "tokenizer")
NUM_GREEDY = 64

PROMPTS = [
    "In the beginning",
    "And God said, Let there be light: and there was light. The café sells naïve rosé.",
    # Longer than Mistral's window of 16 tokens several times over.
    "And the earth was without form, and void; and darkness was upon the face of the deep. "
    "And the Spirit of God moved upon the face of the waters. And God saw the light, that it "
    "was good: and God divided the light from the darkness. 東京 🌈",
]

COMMON = dict(vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
              rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)


def make_config(cls, rope, **kw):
    """Builds a config in transformers 5's dialect (rope_parameters); older releases take
    rope_theta / rope_scaling instead."""
    args = dict(COMMON)
    args.update(kw)
    try:
        return cls(rope_parameters=rope, **args)
    except TypeError:
        args["rope_theta"] = rope["rope_theta"]
        if rope.get("rope_type", "default") != "default":
            args["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
        return cls(**args)


MODELS = {
    # GQA, llama3 rope scaling (original context 32 so every frequency band is touched), tied
    # embeddings, head_dim smaller than hidden / heads would give, float32 storage.
    "llama": (LlamaForCausalLM, make_config(
        LlamaConfig,
        {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
         "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
        head_dim=8, tie_word_embeddings=True), torch.float32, None),
    # Sliding window of 16 tokens, shorter than the prompts; bfloat16 storage.
    "mistral": (MistralForCausalLM, make_config(
        MistralConfig, {"rope_type": "default", "rope_theta": 10000.0},
        sliding_window=16, tie_word_embeddings=False), torch.bfloat16, None),
    # q/k/v biases, linear rope scaling, float16 storage, sharded files.
    "qwen2": (Qwen2ForCausalLM, make_config(
        Qwen2Config, {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 2.0},
        tie_word_embeddings=False, use_sliding_window=False), torch.float16, "60KB"),
}


# Overrides of --gpu-shapes, per model.
GPU_SHAPES = {
    "llama": dict(hidden_size=256, intermediate_size=640, head_dim=128),
    "mistral": dict(hidden_size=256, intermediate_size=640, head_dim=64),
    "qwen2": dict(hidden_size=256, intermediate_size=640, head_dim=64),
}


def gpu_models():
    out = {}
    for name, (cls, config, dtype, shard) in MODELS.items():
        for k, v in GPU_SHAPES[name].items():
            setattr(config, k, v)
        out[name] = (cls, config, dtype, "400KB" if shard else None)
    return out


def randomize(model, seed):
    """Weights large enough that logits have O(1) spread, so greedy choices are not near-ties."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)


def greedy(model, ids, n):
    ids = list(ids)
    out, margins = [], []
    for _ in range(n):
        logits = model(torch.tensor([ids])).logits[0, -1]
        top2 = torch.topk(logits, 2).values
        margins.append(float((top2[0] - top2[1]) / logits.abs().max()))
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        ids.append(nxt)
    return out, min(margins)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "golden"))
    ap.add_argument("--gpu-shapes", action="store_true",
                    help="head dims 64/128 for the CUDA backend's parity tests")
    args = ap.parse_args()
    models = gpu_models() if args.gpu_shapes else MODELS
    sp = spm.SentencePieceProcessor(model_file=os.path.join(TOKENIZER_DIR, "tokenizer.model"))
    summary = {"transformers": transformers.__version__, "torch": torch.__version__, "models": {}}
    for seed, (name, (cls, config, dtype, shard)) in enumerate(sorted(models.items())):
        torch.manual_seed(seed)
        config._attn_implementation = "eager"
        model = cls(config).eval()
        randomize(model, 1234 + seed)
        with torch.no_grad():  # round to the storage dtype, then compute in float64
            for p in model.parameters():
                p.copy_(p.to(dtype).to(torch.float32))
        folder = os.path.join(args.out, name)
        shutil.rmtree(folder, ignore_errors=True)
        save_kw = {"safe_serialization": True}
        if shard:
            save_kw["max_shard_size"] = shard
        model.to(dtype).save_pretrained(folder, **save_kw)
        for f in ("tokenizer.model", "tokenizer_config.json"):
            shutil.copy(os.path.join(TOKENIZER_DIR, f), folder)
        model = model.to(torch.float64)
        tensors, info = {}, []
        with torch.no_grad():
            for i, text in enumerate(PROMPTS):
                ids = [sp.bos_id()] + sp.encode(text)
                logits = model(torch.tensor([ids])).logits[0]
                cont, margin = greedy(model, ids, NUM_GREEDY)
                tensors[f"p{i}.input_ids"] = torch.tensor(ids, dtype=torch.int64)
                tensors[f"p{i}.logits"] = logits.to(torch.float32).contiguous()
                tensors[f"p{i}.greedy"] = torch.tensor(cont, dtype=torch.int64)
                prompt_text = sp.decode(ids[1:])
                full = sp.decode(ids[1:] + [t for t in cont if t not in (1, 2)])
                info.append({"prompt": text, "num_tokens": len(ids), "greedy_min_margin": margin,
                             "continuation_text": full[len(prompt_text):]})
        save_file(tensors, os.path.join(folder, "golden.safetensors"),
                  metadata={"prompts": json.dumps(PROMPTS)})
        with open(os.path.join(folder, "golden.json"), "w") as f:
            json.dump({"prompts": info, "storage_dtype": str(dtype)}, f, indent=1,
                      ensure_ascii=False)
        summary["models"][name] = info
        print(name, [(p["num_tokens"], round(p["greedy_min_margin"], 5)) for p in info],
              flush=True)
    with open(os.path.join(args.out, "MANIFEST.json"), "w") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
