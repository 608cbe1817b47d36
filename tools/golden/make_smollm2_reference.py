#!/usr/bin/env python3
"""Reference logits and greedy continuations of SmolLM2-135M-Instruct (the Q4_1 GGUF that
tools/models/fetch_smollm2.sh fetches), computed independently of longview's C++:

  - weights dequantized by llama.cpp's `gguf` package (not longview's GGUF reader),
  - the forward written here in numpy (float64), applying RoPE the way llama.cpp does on the
    GGUF's own q/k row order (adjacent pairs rotated), so longview's undoing of that order is
    checked too,
  - prompts tokenized by Hugging Face `tokenizers` built from the GGUF vocabulary.

Writes tests/data/smollm2/reference.json: per prompt its token ids, the last position's top-20
logits (id, value) and the 32-token greedy continuation. Small: the model is not committed.

    .venv/bin/pip install -r tools/gguf/requirements.txt
    .venv/bin/python tools/golden/make_smollm2_reference.py "$(tools/models/fetch_smollm2.sh)"
"""
import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "smollm2", "reference.json")
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "Once upon a time, in a small village by the sea,",
    "1, 2, 3, 5, 8, 13,",
]
NEW_TOKENS = 32


def field(reader, key):
    f = reader.fields[key]
    return f.contents()


def load(path):
    r = GGUFReader(path)
    meta = {k: field(r, k) for k in r.fields if not k.startswith("GGUF.")}
    weights = {}
    for t in r.tensors:
        shape = [int(d) for d in reversed(t.shape)]  # numpy order
        w = dequantize(t.data, t.tensor_type).astype(np.float64)
        weights[t.name] = w.reshape(shape)
    return meta, weights


def tokenizer_of(meta):
    tokens = meta["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    # SmolLM's tokenizer.json: single digits, then GPT-2's byte-level split.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    return tok


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_interleaved(x, positions, theta):
    """x: [T, heads, hd] in GGUF row order: pairs (2i, 2i+1) rotate by position * theta^(-2i/hd)."""
    hd = x.shape[-1]
    inv = theta ** (-np.arange(0, hd, 2) / hd)
    ang = positions[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


def forward(meta, w, ids):
    """All positions' logits of `ids` (no cache: the prompts are short)."""
    n_layer = int(meta["llama.block_count"])
    n_head = int(meta["llama.attention.head_count"])
    n_kv = int(meta["llama.attention.head_count_kv"])
    eps = float(meta["llama.attention.layer_norm_rms_epsilon"])
    theta = float(meta["llama.rope.freq_base"])
    x = w["token_embd.weight"][ids]
    T, hidden = x.shape
    hd = hidden // n_head
    pos = np.arange(T, dtype=np.float64)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(n_layer):
        p = f"blk.{l}."
        h = rms_norm(x, w[p + "attn_norm.weight"], eps)
        q = (h @ w[p + "attn_q.weight"].T).reshape(T, n_head, hd)
        k = (h @ w[p + "attn_k.weight"].T).reshape(T, n_kv, hd)
        v = (h @ w[p + "attn_v.weight"].T).reshape(T, n_kv, hd)
        q, k = rope_interleaved(q, pos, theta), rope_interleaved(k, pos, theta)
        group = n_head // n_kv
        out = np.empty((T, n_head, hd))
        for hh in range(n_head):
            s = q[:, hh, :] @ k[:, hh // group, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            out[:, hh, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, hh // group, :]
        x = x + out.reshape(T, hidden) @ w[p + "attn_output.weight"].T
        h = rms_norm(x, w[p + "ffn_norm.weight"], eps)
        g = h @ w[p + "ffn_gate.weight"].T
        u = h @ w[p + "ffn_up.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "ffn_down.weight"].T
    x = rms_norm(x, w["output_norm.weight"], eps)
    head = w.get("output.weight", w["token_embd.weight"])
    return x @ head.T


def main():
    path = sys.argv[1]
    meta, w = load(path)
    tok = tokenizer_of(meta)
    out = {"model": os.path.basename(path), "new_tokens": NEW_TOKENS, "prompts": []}
    for text in PROMPTS:
        ids = tok.encode(text).ids  # SmolLM adds no BOS
        seq = list(ids)
        first_logits = None
        for _ in range(NEW_TOKENS):
            logits = forward(meta, w, seq)[-1]
            if first_logits is None:
                first_logits = logits
            seq.append(int(np.argmax(logits)))
        top = np.argsort(-first_logits)[:20]
        out["prompts"].append({
            "text": text,
            "ids": ids,
            "top_logits": [[int(i), float(first_logits[i])] for i in top],
            "greedy": seq[len(ids):],
            "greedy_text": tok.decode(seq[len(ids):]),
        })
        print(repr(text), "->", repr(out["prompts"][-1]["greedy_text"]), file=sys.stderr)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
