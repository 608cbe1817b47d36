#!/usr/bin/env python3
"""SmolLM2 through `longview serve --device cuda` on the GPU machine (stdlib only): the chat
question "What is the capital of France?" and, for each prompt of tests/data/smollm2/reference.json
(the numpy float64 reference), the 32-token greedy continuation from the same token ids, with
the number of leading tokens that agree (bf16 on the GPU: a near-tie may flip late tokens).

    tools/gpu/smollm2_cuda_check.py BINARY MODEL.gguf OUT.json
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def main():
    binary, model, out_path = sys.argv[1:4]
    ref = json.load(open(os.path.join(ROOT, "tests", "data", "smollm2", "reference.json")))
    env = dict(os.environ)
    proc = subprocess.Popen([binary, "serve", "--model", model, "--device", "cuda", "--port", "0",
                             "--grpc-port", "0", "--stats-interval", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
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
    result = {"log": log}
    try:
        if port is None:
            raise RuntimeError("server did not start")
        chat = post(port, "/v1/chat/completions", {
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 24, "temperature": 0})
        answer = chat["choices"][0]["message"]["content"]
        result["chat_answer"] = answer
        result["chat_names_paris"] = "Paris" in answer
        result["prompts"] = []
        for p in ref["prompts"]:
            r = post(port, "/v1/completions", {"prompt": p["ids"], "max_tokens": ref["new_tokens"],
                                               "temperature": 0, "ignore_eos": True,
                                               "logprobs": 0})
            got = [t for t in r["choices"][0]["logprobs"]["tokens"]]
            text = r["choices"][0]["text"]
            # Compare by token ids via /tokenize-free route: the returned text against the reference.
            agree = 0
            for a, b in zip(text, p["greedy_text"]):
                if a != b:
                    break
                agree += 1
            result["prompts"].append({"text": p["text"], "cuda_text": text,
                                      "reference_text": p["greedy_text"],
                                      "identical": text == p["greedy_text"],
                                      "agreeing_prefix_chars": agree,
                                      "reference_chars": len(p["greedy_text"]),
                                      "tokens_returned": len(got)})
    except Exception as e:  # recorded, then the server is stopped
        result["error"] = repr(e)
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    result["log"] += proc.stderr.readlines() if proc.stderr else []
    json.dump(result, open(out_path, "w"), indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "log"}, indent=1))


if __name__ == "__main__":
    main()
