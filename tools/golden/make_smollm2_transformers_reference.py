#!/usr/bin/env python3
"""Transformers' own reference for SmolLM2-135M-Instruct (the Q4_1 GGUF of
tools/models/fetch_smollm2.sh): the model and tokenizer loaded by transformers from the GGUF
(`from_pretrained(..., gguf_file=...)`, its own dequantization and q/k reordering), run in
float64 on the CPU. Needs torch, transformers and the `gguf` package; it runs on the GPU
machine (this machine has no torch), see deploy/smollm2_gpu.sh.

For each prompt of tests/data/smollm2/reference.json (ids from Hugging Face `tokenizers`):
transformers' tokenization of the text, the last position's top-20 logits and the logsumexp
of all of them (so that API logprobs can be compared), and the 32-token greedy continuation.
Then the chat "What is the capital of France?" through the GGUF's template with
apply_chat_template: its ids and greedy answer.

    python3 tools/golden/make_smollm2_transformers_reference.py MODEL.gguf OUT.json
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAT = [{"role": "user", "content": "What is the capital of France?"}]
CHAT_TOKENS = 24


def greedy(model, ids, n):
    """n greedy tokens after `ids` (no end-of-sequence stop), and the first step's logits."""
    out, first, past = [], None, None
    x = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(n):
            r = model(input_ids=x, past_key_values=past, use_cache=True)
            logits = r.logits[0, -1]
            if first is None:
                first = logits
            past = r.past_key_values
            nxt = int(torch.argmax(logits))
            out.append(nxt)
            x = torch.tensor([[nxt]])
    return out, first


def main():
    path, out_path = sys.argv[1:3]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder, name = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float64)
    model.eval()
    ref = json.load(open(os.path.join(ROOT, "tests", "data", "smollm2", "reference.json")))
    out = {"model": name, "new_tokens": ref["new_tokens"], "dtype": "float64", "device": "cpu",
           "transformers": transformers.__version__, "torch": torch.__version__, "prompts": []}
    for p in ref["prompts"]:
        hf_ids = tok(p["text"], add_special_tokens=True)["input_ids"]
        seq, logits = greedy(model, p["ids"], ref["new_tokens"])
        top = torch.argsort(logits, descending=True)[:20]
        out["prompts"].append({
            "text": p["text"],
            "ids": p["ids"],
            "transformers_ids": hf_ids,
            "top_logits": [[int(i), float(logits[i])] for i in top],
            "logsumexp": float(torch.logsumexp(logits, 0)),
            "greedy": seq,
            "greedy_text": tok.decode(seq),
        })
        print(repr(p["text"]), "->", repr(out["prompts"][-1]["greedy_text"]), file=sys.stderr)
    chat_ids = tok.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True)
    if isinstance(chat_ids, dict) or hasattr(chat_ids, "keys"):
        chat_ids = chat_ids["input_ids"]
    chat_ids = [int(i) for i in chat_ids]
    answer, _ = greedy(model, chat_ids, CHAT_TOKENS)
    out["chat"] = {"messages": CHAT, "ids": chat_ids, "greedy": answer,
                   "greedy_text": tok.decode(answer, skip_special_tokens=True)}
    print("chat ->", repr(out["chat"]["greedy_text"]), file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
