#!/usr/bin/env python3
"""Evaluation harness: measures a model under an attention mode and KV policy through
longview's own engine (`longview eval`), and prints markdown tables.

Tables:
  * passkey accuracy by context length x needle depth,
  * multi-key recall and event-stream QA accuracy by context length,
  * held-out perplexity (texts also longer than any window) and, for a mode other than dense,
    next-token KL divergence against dense attention on the same inputs,
  * the same per position along the text (buckets of `--bucket` tokens): whether perplexity
    stays flat as the stream moves past a window.

Every later attention mode and KV policy is measured with the same command:

  python3 tools/eval/run_eval.py --model models/longview-tiny --suite full \\
      --attention-mode sliding_window --window 512 --out-dir docs/eval/sw512

Suites: `fast` (CI: short contexts, a few tasks) and `full` (lengths 1k/2k/4k/8k, depths
10%..90%). Tasks come from tools/tasks/longctx_tasks.py with a fixed seed. Lengths are counted
with the model's own tokenizer through `longview tokenize` (a coprocess), so any model longview
loads works: a folder with tokenizer.model or tokenizer.json, or a GGUF file:

  python3 tools/eval/run_eval.py --model ~/.cache/longview/models/smollm2/*.gguf \\
      --device cuda --suite full --out-dir docs/eval/smollm2-dense-full
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "tasks"))
import longctx_tasks as tasks  # noqa: E402

SUITES = {
    "fast": {"lengths": [512, 1024], "depths": [0.2, 0.8], "per_cell": 2,
             "qa_lengths": [1024], "qa_per_length": 4, "ppl_tokens": [1024], "bucket": 512},
    # Attention-mode comparisons (sliding windows, sinks): passkey by depth at lengths past the
    # windows, perplexity / KL over the whole held-out text per 256-token bucket, and (modes
    # other than dense) perplexity along the long held-out text, with no dense pass: dense
    # cannot take it (28k tokens, past the model's 8,192-token context).
    "window": {"lengths": [1024, 2048, 4096], "depths": [0.1, 0.3, 0.5, 0.7, 0.9],
               "per_cell": 2, "qa_lengths": [], "qa_per_length": 0, "ppl_tokens": [8192],
               "bucket": 256, "long_text": True},
    # KV policies against dense (docs/eval/kv_policies.md): every policy at 50/25/10% budgets,
    # sized for the CPU backend (13 runs per model).
    "policy": {"lengths": [1024, 2048], "depths": [0.1, 0.3, 0.5, 0.7, 0.9], "per_cell": 1,
               "qa_lengths": [1024, 2048], "qa_per_length": 4, "ppl_tokens": [2048],
               "bucket": 512},
    # The same at 1k only, for a model the CPU backend runs slowly (SmolLM2-135M).
    "policy1k": {"lengths": [1024], "depths": [0.1, 0.3, 0.5, 0.7, 0.9], "per_cell": 1,
                 "qa_lengths": [1024], "qa_per_length": 4, "ppl_tokens": [1024], "bucket": 256},
    "full": {"lengths": [1024, 2048, 4096, 8192], "depths": [0.1, 0.3, 0.5, 0.7, 0.9],
             "per_cell": 4, "qa_lengths": [1024, 2048, 4096, 8192], "qa_per_length": 10,
             "ppl_tokens": [2048, 8192], "bucket": 512},
}
HELDOUT = os.path.join(HERE, "data", "heldout.txt")
# Matthew Henry's Concise Commentary (public domain; data/README.md says how it was made and
# checked against the training text).
HELDOUT_LONG = os.path.join(HERE, "data", "heldout_long.txt")


# Tokens kept free after a prompt for the answer, so that a task of length L (prompt and
# answer together) fits a model whose context is L.
ANSWER_ROOM = 16


class Tokenizer:
    """The model's tokenizer, exactly as the engine applies it: `longview tokenize` runs as a
    coprocess answering one JSON line per request (server/tokenize_command.h)."""

    def __init__(self, binary, model):
        self.proc = subprocess.Popen([binary, "tokenize", "--model", model],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     encoding="utf-8", bufsize=1)

    def _ask(self, request):
        self.proc.stdin.write(json.dumps(request, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"`longview tokenize` exited ({self.proc.wait()}); see its stderr")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def encode(self, text, add_special=False):
        """Token ids of `text`; with add_special, as the engine encodes a prompt (BOS where the
        model's tokenizer config adds one)."""
        return self._ask({"text": text, "add_special": add_special})["ids"]

    def decode(self, ids):
        return self._ask({"ids": list(ids)})["text"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def make_tasks(suite, sp, seed, filler, bucket=None, long_text=True):
    count = lambda s: len(sp.encode(s, add_special=True))  # as the engine counts a prompt
    out = []
    for L in suite["lengths"]:
        for d in suite["depths"]:
            for i in range(suite["per_cell"]):
                import random
                rng = random.Random(f"{seed}:passkey:{L}:{d}:{i}")
                prompt, answer = tasks.passkey(L - ANSWER_ROOM, d, rng, count, filler)
                out.append({"task": "passkey", "length": L, "depth": d, "index": i,
                            "prompt": prompt, "answer": answer})
    for name in ("multikey", "events"):
        for L in suite["qa_lengths"]:
            for i in range(suite["qa_per_length"]):
                import random
                d = (i + 0.5) / suite["qa_per_length"]
                rng = random.Random(f"{seed}:{name}:{L}:{i}")
                prompt, answer = tasks.TASKS[name](L - ANSWER_ROOM, d, rng, count, filler)
                out.append({"task": name, "length": L, "depth": round(d, 3), "index": i,
                            "prompt": prompt, "answer": answer})
    if os.path.exists(HELDOUT):
        with open(HELDOUT, encoding="utf-8") as f:
            text = f.read()
        ids = sp.encode(text)
        for n in suite["ppl_tokens"]:
            if len(ids) < n:
                print(f"warning: held-out text has {len(ids)} tokens, fewer than {n}",
                      file=sys.stderr)
            t = {"task": "perplexity", "source": "heldout", "length": min(n, len(ids)),
                 "text": sp.decode(ids[: n - 8])}
            if bucket:
                t["bucket"] = bucket
            out.append(t)
    if suite.get("long_text") and long_text and os.path.exists(HELDOUT_LONG):
        with open(HELDOUT_LONG, encoding="utf-8") as f:
            text = f.read()
        t = {"task": "perplexity", "source": "heldout_long",
             "length": len(sp.encode(text, add_special=True)),
             "text": text, "compare_dense": False}
        if bucket:
            t["bucket"] = bucket
        out.append(t)
    return out


def run_longview(binary, model, task_file, result_file, args):
    cmd = [binary, "eval", "--model", model, "--tasks", task_file, "--out", result_file,
           "--attention-mode", args.attention_mode, "--kv-policy", args.kv_policy,
           "--device", args.device]
    if args.window:
        cmd += ["--window", str(args.window)]
    if args.sinks:
        cmd += ["--sinks", str(args.sinks)]
    if args.top_k:
        cmd += ["--top-k", str(args.top_k)]
    if args.block_size:
        cmd += ["--block-size", str(args.block_size)]
    if args.hip_stages:
        cmd += ["--hip-stages", args.hip_stages]
    if args.hip_refresh:
        cmd += ["--hip-refresh", args.hip_refresh]
    if args.dense_layers is not None:
        cmd += ["--dense-layers", args.dense_layers]
    if args.dense_top_k:
        cmd += ["--dense-top-k", str(args.dense_top_k)]
    if args.kv_budget:
        cmd += ["--kv-budget", str(args.kv_budget)]
    if args.kv_budget_fraction:
        cmd += ["--kv-budget-fraction", str(args.kv_budget_fraction)]
    if args.chunk:
        cmd += ["--chunk", str(args.chunk)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    subprocess.run(cmd, check=True)
    with open(result_file, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def errors(results):
    return [r for r in results if "error" in r]


def pct(xs):
    return f"{100.0 * sum(xs) / len(xs):.0f}%" if xs else "—"


def tables(results, settings):
    lines = [f"Settings: {settings}", ""]
    for r in errors(results):
        lines.append(f"error in {r['task']} length {r['length']}: {r['error']}")
    pk = [r for r in results if r["task"] == "passkey"]
    if pk:
        lengths = sorted({r["length"] for r in pk})
        depths = sorted({r["depth"] for r in pk})
        lines.append("Passkey accuracy (rows: context length in tokens; columns: needle depth)")
        lines.append("")
        lines.append("| length | " + " | ".join(f"{d:.0%}" for d in depths) + " | all |")
        lines.append("|---" * (len(depths) + 2) + "|")
        for L in lengths:
            row = [pct([r["correct"] for r in pk if r["length"] == L and r["depth"] == d])
                   for d in depths]
            lines.append(f"| {L} | " + " | ".join(row) + " | "
                         + pct([r["correct"] for r in pk if r["length"] == L]) + " |")
        lines.append("")
    for name, title in (("multikey", "Multi-key recall"), ("events", "Event-stream QA")):
        rs = [r for r in results if r["task"] == name]
        if rs:
            lengths = sorted({r["length"] for r in rs})
            lines.append(f"{title} accuracy by context length")
            lines.append("")
            lines.append("| " + " | ".join(str(L) for L in lengths) + " |")
            lines.append("|---" * len(lengths) + "|")
            lines.append("| " + " | ".join(pct([r["correct"] for r in rs if r["length"] == L])
                                           for L in lengths) + " |")
            lines.append("")
    pp = [r for r in results if r["task"] == "perplexity" and "error" not in r]
    if pp:
        lines.append("Held-out perplexity and next-token KL against dense")
        lines.append("")
        lines.append("| tokens | perplexity | dense perplexity | mean KL(dense‖mode) |")
        lines.append("|---|---|---|---|")
        for r in pp:
            dense = (f"{math.exp(r['nll_dense'] / r['tokens']):.3f}" if "nll_dense" in r
                     else "— (not run)")
            kl = f"{r['kl_vs_dense']:.5f}" if "kl_vs_dense" in r else "—"
            lines.append(f"| {r['tokens'] + 1} | {r['perplexity']:.3f} | {dense} | {kl} |")
        lines.append("")
    for r in pp:
        if not r.get("buckets"):
            continue
        lines.append(f"Perplexity by position ({r.get('source', 'held-out')} text, "
                     f"{r['tokens'] + 1} tokens; a row: the predicted tokens at positions "
                     "[start, end))")
        lines.append("")
        lines.append("| positions | tokens | perplexity | mean NLL | dense perplexity | "
                     "mean KL(dense‖mode) |")
        lines.append("|---|---|---|---|---|---|")
        for b in r["buckets"]:
            dense = f"{b['perplexity_dense']:.3f}" if "perplexity_dense" in b else "—"
            kl = f"{b['kl_vs_dense']:.5f}" if "kl_vs_dense" in b else "—"
            lines.append(f"| {b['start']}–{b['end']} | {b['tokens']} | {b['perplexity']:.3f} | "
                         f"{b['mean_nll']:.4f} | {dense} | {kl} |")
        lines.append("")
    return "\n".join(lines)


def summary(results):
    s = {}
    for name in ("passkey", "multikey", "events"):
        rs = [r for r in results if r["task"] == name]
        if rs:
            s[name] = {str(L): sum(r["correct"] for r in rs if r["length"] == L)
                       / len([r for r in rs if r["length"] == L])
                       for L in sorted({r["length"] for r in rs})}
    s["perplexity"] = {}
    for r in results:
        if r["task"] != "perplexity" or "error" in r:
            continue
        e = {"perplexity": r["perplexity"], "kl_vs_dense": r.get("kl_vs_dense"),
             "source": r.get("source", "heldout")}
        if r.get("buckets"):
            e["buckets"] = [{k: b[k] for k in ("start", "end", "tokens", "perplexity",
                                               "mean_nll", "kl_vs_dense") if k in b}
                            for b in r["buckets"]]
        s["perplexity"][str(r["tokens"] + 1)] = e
    s["errors"] = len(errors(results))
    return s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "longview-tiny"))
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "server", "longview"))
    ap.add_argument("--suite", choices=sorted(SUITES), default="fast")
    ap.add_argument("--attention-mode", default="dense")
    ap.add_argument("--device", default="cpu", help="longview eval's backend: cpu | cuda | auto")
    ap.add_argument("--window", type=int, default=0)
    ap.add_argument("--sinks", type=int, default=0)
    ap.add_argument("--top-k", type=int, default=0, help="hip: tokens the last stage keeps")
    ap.add_argument("--block-size", type=int, default=0, help="hip: prompt queries pruned together")
    ap.add_argument("--hip-stages", default="", help="hip: chunk:keep[:pool],... per pruning stage")
    ap.add_argument("--hip-refresh", default="",
                    help="hip: decode steps between mask refreshes per stage, e.g. 32,16,8")
    ap.add_argument("--dense-layers", default=None,
                    help="hip: layers keeping --dense-top-k, e.g. 0,1,2,3 ('' for none)")
    ap.add_argument("--dense-top-k", type=int, default=0, help="hip: the dense layers' top-k")
    ap.add_argument("--kv-policy", default="none")
    ap.add_argument("--kv-budget", type=int, default=0)
    ap.add_argument("--kv-budget-fraction", type=float, default=0,
                    help="the policy's budget as a fraction of each task's tokens")
    ap.add_argument("--chunk", type=int, default=0,
                    help="perplexity: tokens per prefill step (0: longview eval's 512); a "
                         "policy evicts between steps")
    ap.add_argument("--filler", default="classic",
                    help="'classic' or a text file (see longctx_tasks.py)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bucket", type=int, default=None,
                    help="tokens per position bucket of the perplexity tables (0: none; "
                         "default: the suite's)")
    ap.add_argument("--out-dir", default=None, help="write tasks, results, tables.md, summary.json")
    args = ap.parse_args(argv)

    sp = Tokenizer(args.binary, args.model)
    filler = tasks.Filler.load(args.filler)
    suite = SUITES[args.suite]
    bucket = suite.get("bucket", 0) if args.bucket is None else args.bucket
    # Dense attention and hip (queries keep their positions) refuse texts past the model's
    # context (the long held-out text).
    task_list = make_tasks(suite, sp, args.seed, filler, bucket,
                           long_text=args.attention_mode not in ("dense", "hip"))
    sp.close()
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="lv_eval_")
    os.makedirs(out_dir, exist_ok=True)
    task_file = os.path.join(out_dir, "tasks.jsonl")
    with open(task_file, "w", encoding="utf-8") as f:
        for t in task_list:
            f.write(json.dumps(t, ensure_ascii=False) + "\n")
    t0 = time.time()
    results = run_longview(args.binary, args.model, task_file,
                           os.path.join(out_dir, "results.jsonl"), args)
    settings = (f"model={os.path.basename(os.path.normpath(args.model))} "
                f"attention={args.attention_mode} window={args.window} sinks={args.sinks} "
                f"top_k={args.top_k} block_size={args.block_size} hip_stages={args.hip_stages} "
                f"hip_refresh={args.hip_refresh} dense_layers={args.dense_layers} "
                f"dense_top_k={args.dense_top_k} "
                f"kv_policy={args.kv_policy} kv_budget={args.kv_budget} "
                f"kv_budget_fraction={args.kv_budget_fraction} chunk={args.chunk or 512} "
                f"suite={args.suite} "
                f"bucket={bucket} "
                f"filler={filler.kind} seed={args.seed} tasks={len(results)} "
                f"time={time.time() - t0:.0f}s")
    text = tables(results, settings)
    print(text)
    with open(os.path.join(out_dir, "tables.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"settings": settings, "summary": summary(results)}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
