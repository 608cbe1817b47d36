#!/usr/bin/env python3
"""Second half of prepare_data.sh: tokenizer input, token shards, filler text, meta.json.

Runs under Debian's /usr/bin/python3 with python3-sentencepiece (standard library otherwise).

  build_tokens.py spm-input --work W            -> W/spm_input.txt (lines for spm_train)
  build_tokens.py encode --work W --out .traindata
      -> .traindata/tokens/<source>.bin.xz  xz-compressed uint16 little-endian ids; each
                                            document is its tokens then EOS (id 2); no BOS
         .traindata/filler.txt.xz         prose documents, one per line, for the tasks' filler
         .traindata/meta.json             sources, token counts, default mixture weights, sha256s
"""
import argparse
import array
import hashlib
import json
import lzma
import os
import random
import re
import sys

DOC_SEP = "\n\x1e\n"
# source -> (share of the natural-text mixture, MB cap of its text in the tokenizer's input)
SOURCES = {
    "web": (0.28, None),
    "kjv": (0.20, None),
    "gcide": (0.24, 8.0),
    "wordnet": (0.16, 5.0),
    "jargon": (0.08, None),
    "devil": (0.04, None),
}
FILLER_SOURCES = ("web", "kjv", "devil", "jargon")


def read_docs(work, name):
    with open(os.path.join(work, "text", name + ".txt"), encoding="utf-8") as f:
        return [d.strip("\n") for d in f.read().split(DOC_SEP) if d.strip()]


def pieces(doc, maxlen=2000):
    """Lines for the tokenizer trainer: paragraphs cut at sentence ends to <= maxlen chars."""
    for para in doc.split("\n"):
        para = para.strip()
        while len(para) > maxlen:
            cut = para.rfind(". ", 0, maxlen)
            cut = cut + 1 if cut > maxlen // 4 else maxlen
            yield para[:cut].strip()
            para = para[cut:].strip()
        if para:
            yield para


def spm_input(work):
    rng = random.Random(1234)
    path = os.path.join(work, "spm_input.txt")
    with open(path, "w", encoding="utf-8") as f:
        for name, (_, cap_mb) in SOURCES.items():
            docs = read_docs(work, name)
            if cap_mb is not None:
                docs = docs[:]
                rng.shuffle(docs)
            used = 0
            for d in docs:
                if cap_mb is not None and used > cap_mb * 1e6:
                    break
                for p in pieces(d):
                    f.write(p + "\n")
                    used += len(p) + 1
            print(f"spm input: {name:8s} {used / 1e6:6.2f} MB", flush=True)
    print(path)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def encode(work, out):
    import sentencepiece as spm

    tok_path = os.path.join(out, "tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=tok_path)
    assert sp.piece_to_id("<s>") == 1 and sp.piece_to_id("</s>") == 2 and sp.unk_id() == 0
    vocab = sp.get_piece_size()
    assert vocab <= 65535
    eos = sp.eos_id()
    os.makedirs(os.path.join(out, "tokens"), exist_ok=True)
    meta = {"format": "xz of uint16-le; each document = its tokens then EOS (no BOS)",
            "vocab_size": vocab, "bos_id": sp.bos_id(), "eos_id": eos, "unk_id": sp.unk_id(),
            "tokenizer_sha256": sha256(tok_path), "sources": {}}
    total_chars = 0
    for name, (weight, _) in SOURCES.items():
        docs = read_docs(work, name)
        ids = array.array("H")
        chars = 0
        for d in docs:
            ids.extend(sp.encode(d))
            ids.append(eos)
            chars += len(d)
        if sys.byteorder != "little":
            ids.byteswap()
        path = os.path.join(out, "tokens", name + ".bin.xz")
        with lzma.open(path, "wb", preset=6) as f:
            ids.tofile(f)
        stale = os.path.join(out, "tokens", name + ".bin")
        if os.path.exists(stale):
            os.remove(stale)
        total_chars += chars
        meta["sources"][name] = {"file": f"tokens/{name}.bin.xz", "docs": len(docs), "tokens": len(ids),
                                 "chars": chars, "weight": weight, "sha256": sha256(path)}
        print(f"tokens: {name:8s} {len(docs):6d} docs {len(ids):10d} tokens "
              f"({chars / max(1, len(ids)):.2f} chars/token)", flush=True)
    fpath = os.path.join(out, "filler.txt.xz")
    with lzma.open(fpath, "wt", encoding="utf-8", preset=6) as f:
        for name in FILLER_SOURCES:
            for d in read_docs(work, name):
                f.write(re.sub(r"\s+", " ", d).strip() + "\n")
    meta["filler"] = {"file": "filler.txt.xz", "sources": list(FILLER_SOURCES), "sha256": sha256(fpath)}
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    ntok = sum(s["tokens"] for s in meta["sources"].values())
    print(f"total {ntok} tokens, {total_chars / 1e6:.1f} M chars; wrote {out}/meta.json", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["spm-input", "encode"])
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", default=".traindata")
    a = ap.parse_args()
    if a.stage == "spm-input":
        spm_input(a.work)
    else:
        encode(a.work, a.out)


if __name__ == "__main__":
    main()
