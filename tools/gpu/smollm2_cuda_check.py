#!/usr/bin/env python3
"""SmolLM2 through `longview serve --device cuda` on the GPU machine (stdlib only), against
transformers' float64 reference (tools/golden/make_smollm2_transformers_reference.py):

  * the chat question "What is the capital of France?" (the GGUF's own template) — the answer
    must name Paris, and is compared with transformers' greedy answer;
  * per prompt, the first generated position's top-20 logprobs by token id
    (return_tokens_as_token_ids) against transformers' log-softmax: the largest difference
    relative to the row's largest |logit| (the bf16 tolerance of the golden models is 4e-2);
  * the 32-token greedy continuation from the same token ids: how many leading tokens agree,
    and where they part, how far apart the two tokens are in the server's own logprobs (a
    near-tie when within the tolerance).

    tools/gpu/smollm2_cuda_check.py BINARY MODEL.gguf REFERENCE.json OUT.json [--device cuda]
"""
import json
import re
import subprocess
import sys
import time
import urllib.request

TOLERANCE = 4e-2


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def ids_of(tokens):
    return [int(t.split(":", 1)[1]) for t in tokens]


def check_prompt(port, p, new_tokens):
    r = post(port, "/v1/completions", {"prompt": p["ids"], "max_tokens": new_tokens,
                                       "temperature": 0, "ignore_eos": True, "logprobs": 20,
                                       "return_tokens_as_token_ids": True})
    lp = r["choices"][0]["logprobs"]
    got = ids_of(lp["tokens"])
    ref_logits = {i: v for i, v in p["top_logits"]}
    scale = max(abs(v) for v in ref_logits.values())
    first = {int(k.split(":", 1)[1]): v for k, v in lp["top_logprobs"][0].items()}
    diffs = [abs(first[i] - (v - p["logsumexp"])) for i, v in ref_logits.items() if i in first]
    agree = 0
    while agree < min(len(got), len(p["greedy"])) and got[agree] == p["greedy"][agree]:
        agree += 1
    out = {"text": p["text"], "first_top20_compared": len(diffs),
           "first_max_abs_logprob_diff": max(diffs) if diffs else None,
           "first_max_rel_diff": max(diffs) / scale if diffs else None,
           "first_top1_equal": got[0] == p["greedy"][0],
           "greedy_identical": got == p["greedy"], "greedy_agreeing_tokens": agree,
           "greedy_tokens": len(got), "cuda_text": r["choices"][0]["text"]}
    if agree < len(got):
        tops = {int(k.split(":", 1)[1]): v for k, v in lp["top_logprobs"][agree].items()}
        ref_tok = p["greedy"][agree]
        if ref_tok in tops:
            out["divergence_gap_in_cuda_logprobs"] = tops[got[agree]] - tops[ref_tok]
            out["divergence_gap_rel"] = out["divergence_gap_in_cuda_logprobs"] / scale
            out["divergence_is_near_tie"] = out["divergence_gap_rel"] <= TOLERANCE
        else:
            out["divergence_gap_in_cuda_logprobs"] = None
            out["divergence_is_near_tie"] = False
    return out


def main():
    binary, model, ref_path, out_path = sys.argv[1:5]
    device = sys.argv[6] if len(sys.argv) > 6 and sys.argv[5] == "--device" else "cuda"
    ref = json.load(open(ref_path))
    proc = subprocess.Popen([binary, "serve", "--model", model, "--device", device, "--port", "0",
                             "--grpc-port", "0", "--stats-interval", "0"],
                            stderr=subprocess.PIPE, text=True)
    log, port = [], None
    deadline = time.time() + 120
    while time.time() < deadline and port is None:
        line = proc.stderr.readline()
        if not line:
            break
        log.append(line)
        m = re.search(r"HTTP on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
    result = {"device": device, "reference": ref_path, "tolerance": TOLERANCE, "log": log}
    try:
        if port is None:
            raise RuntimeError("server did not start")
        chat = post(port, "/v1/chat/completions", {
            "messages": ref["chat"]["messages"], "max_tokens": len(ref["chat"]["greedy"]),
            "temperature": 0})
        answer = chat["choices"][0]["message"]["content"]
        result["chat_answer"] = answer
        result["chat_reference_answer"] = ref["chat"]["greedy_text"]
        result["chat_names_paris"] = "Paris" in answer
        result["prompts"] = [check_prompt(port, p, ref["new_tokens"]) for p in ref["prompts"]]
        rels = [p["first_max_rel_diff"] for p in result["prompts"]]
        result["max_rel_diff"] = max(rels)
        result["pass"] = (result["chat_names_paris"] and result["max_rel_diff"] <= TOLERANCE and
                          all(p["greedy_identical"] or p.get("divergence_is_near_tie")
                              for p in result["prompts"]))
    except Exception as e:  # recorded, then the server is stopped
        result["error"] = repr(e)
        result["pass"] = False
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    result["log"] += proc.stderr.readlines() if proc.stderr else []
    json.dump(result, open(out_path, "w"), indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "log"}, indent=1))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
