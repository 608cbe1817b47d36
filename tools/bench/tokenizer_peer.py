#!/usr/bin/env python3
"""Peer of tokenizer_bench: Hugging Face `tokenizers` encoding the same documents.

    # A benchmark tokenizer: BPE trained on the text itself, in a family's configuration.
    .venv/bin/python tools/bench/tokenizer_peer.py make --text T --family llama3 --vocab 32000 --out DIR
    # Timing (tokenizer_bench runs this itself): one JSON line.
    .venv/bin/python tools/bench/tokenizer_peer.py time --tokenizer DIR --text T [--repeats 5]

Documents are the text's "\\n\\n"-separated parts, as tokenizer_bench cuts them, encoded without
special tokens on one thread (RAYON_NUM_THREADS=1): `encode` one document per call (Python's
per-call cost included) and `encode_batch_fast` over all of them (Rust only). The ids' FNV-1a
hash lets tokenizer_bench check that both sides produced the same ids.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tokenizers import Tokenizer  # noqa: E402  (after the thread settings)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "golden"))


def documents(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    return [d for d in text.split("\n\n") if d]


def fnv1a(all_ids):
    h = 0xCBF29CE484222325
    for ids in all_ids:
        for i in ids:
            h ^= i & 0xFFFFFFFF
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        h ^= 0xFFFFFFFF  # document separator
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def cmd_time(args):
    tok = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    docs = documents(args.text)
    num_bytes = sum(len(d.encode("utf-8")) for d in docs)
    tok.encode_batch_fast(docs[:50], add_special_tokens=False)  # warm-up
    per_call, batch = [], []
    ids = None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ids = [tok.encode(d, add_special_tokens=False).ids for d in docs]
        per_call.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tok.encode_batch_fast(docs, add_special_tokens=False)
        batch.append(time.perf_counter() - t0)
    mb = num_bytes / 1e6
    print(json.dumps({
        "peer": "tokenizers",
        "version": __import__("tokenizers").__version__,
        "docs": len(docs),
        "bytes": num_bytes,
        "tokens": sum(len(i) for i in ids),
        "ids_fnv1a": fnv1a(ids),
        "encode_mb_per_s_median": mb / sorted(per_call)[len(per_call) // 2],
        "encode_mb_per_s_best": mb / min(per_call),
        "batch_mb_per_s_median": mb / sorted(batch)[len(batch) // 2],
        "batch_mb_per_s_best": mb / min(batch),
    }))


def cmd_make(args):
    import make_bpe_tokenizers as m  # the test tokenizers' recipes

    with open(args.text, encoding="utf-8") as f:
        lines = f.read().split("\n")
    m.VOCAB_SIZE = args.vocab
    makers = {"gpt2": m.make_gpt2, "llama3": m.make_llama3, "qwen2": m.make_qwen2,
              "smollm": m.make_smollm}
    tok, config = makers[args.family](lines)
    os.makedirs(args.out, exist_ok=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)
    print(f"{args.family}: vocab {tok.get_vocab_size()} -> {args.out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("time")
    t.add_argument("--tokenizer", required=True)
    t.add_argument("--text", required=True)
    t.add_argument("--repeats", type=int, default=5)
    mk = sub.add_parser("make")
    mk.add_argument("--text", required=True)
    mk.add_argument("--family", default="llama3", choices=["gpt2", "llama3", "qwen2", "smollm"])
    mk.add_argument("--vocab", type=int, default=32000)
    mk.add_argument("--out", required=True)
    args = ap.parse_args()
    cmd_time(args) if args.cmd == "time" else cmd_make(args)


if __name__ == "__main__":
    main()
