#!/usr/bin/env python3
"""Trains longview's embedded default model: a small Llama (LlamaForCausalLM) with grouped-query
attention, on public-domain / freely licensed English text plus synthetic long-context tasks.
See tools/train/README.md for the data, the commands and the resume procedure.

One invocation = one run that fits a time budget (--minutes, the whole process's wall time,
startup, saving and the final eval included). Each run writes OUT/ckpt/, which is at once
  * a Hugging Face folder (config.json, sharded bf16 model-*.safetensors of <= 15 MB each,
    tokenizer.model, tokenizer_config.json, generation_config.json), loadable with
    LlamaForCausalLM.from_pretrained, and
  * the resumable checkpoint (trainer_state.json: step, samples, tokens, training seconds,
    runs done, schedule plan).
plus OUT/eval.json (passkey accuracy, samples) and OUT/train_log.jsonl.

  first run:  python3 tools/train/train.py --data .traindata --out $OUT --minutes 8.5
  next runs:  python3 tools/train/train.py --data .traindata --out $OUT --minutes 8.5 \\
                  --resume .traindata/ckpt          (a copy of the previous run's OUT/ckpt)
  export:     python3 tools/train/export.py --ckpt .traindata/ckpt --out models/<name>

Determinism: weights are initialised from --seed; training sample i is a pure function of
(--seed, i), and run k resumes at sample step*batch, so the data stream does not depend on
how training is split into runs. Resuming restarts AdamW's moments (they are not stored: see
README) with a short LR re-warmup. The LR schedule is warmup-stable-decay over the planned
runs, measured in training seconds (--plan-runs) or in steps (--total-steps, fully
reproducible given the same number of steps per run).
"""
import time

T_START = time.time()  # the --minutes budget counts from here (before the heavy imports)

import argparse
import json
import lzma
import math
import os
import random
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tasks"))
import longctx_tasks as tasks  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def log(*a):
    print(f"[{time.time() - T_START:7.1f}s]", *a, flush=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_argument_group("run")
    g.add_argument("--data", default=".traindata", help="folder written by prepare_data.sh")
    g.add_argument("--out", required=True, help="output folder (ckpt/, eval.json, train_log.jsonl)")
    g.add_argument("--resume", default=None, help="a previous run's ckpt/ folder")
    g.add_argument("--minutes", type=float, default=8.5, help="wall budget of this whole process")
    g.add_argument("--reserve-s", type=float, default=50.0,
                   help="seconds kept for saving and the final eval at the end of the budget")
    g.add_argument("--max-steps", type=int, default=0, help="also stop this run after N optimizer steps")
    g.add_argument("--eval-only", action="store_true", help="load --resume, eval, export, no training")
    g.add_argument("--device", default="auto")
    g.add_argument("--workers", type=int, default=-1, help="data loader processes (-1: auto)")
    g.add_argument("--compile", action="store_true", help="torch.compile the forward+loss (see README)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--name", default="longview-tiny-llama")
    g = ap.add_argument_group("model (ignored when resuming)")
    g.add_argument("--hidden", type=int, default=384)
    g.add_argument("--layers", type=int, default=8)
    g.add_argument("--heads", type=int, default=6)
    g.add_argument("--kv-heads", type=int, default=2)
    g.add_argument("--head-dim", type=int, default=64)
    g.add_argument("--intermediate", type=int, default=1024)
    g.add_argument("--max-pos", type=int, default=8192)
    g.add_argument("--rope-theta", type=float, default=500000.0)
    g = ap.add_argument_group("optimisation")
    g.add_argument("--seq-len", type=int, default=4096)
    g.add_argument("--batch-tokens", type=int, default=131072, help="tokens per optimizer step")
    g.add_argument("--micro-batch", type=int, default=32, help="sequences per forward/backward")
    g.add_argument("--lr", type=float, default=2e-3)
    g.add_argument("--min-lr-frac", type=float, default=0.05)
    g.add_argument("--warmup-steps", type=int, default=150)
    g.add_argument("--rewarm-steps", type=int, default=30, help="LR re-warmup after a resume")
    g.add_argument("--decay-frac", type=float, default=0.35, help="final fraction of the schedule that decays")
    g.add_argument("--plan-runs", type=int, default=0,
                   help="runs the schedule spans (time-based); default 3, or the checkpoint's plan")
    g.add_argument("--total-steps", type=int, default=0, help="step-based schedule instead of time-based")
    g.add_argument("--weight-decay", type=float, default=0.1)
    g.add_argument("--clip", type=float, default=1.0)
    g = ap.add_argument_group("data mixture")
    g.add_argument("--task-frac", type=float, default=0.4, help="share of sequences that hold a synthetic task")
    g.add_argument("--task-mix", default="passkey:0.45,multikey:0.30,events:0.25")
    g.add_argument("--classic-filler", type=float, default=0.3, help="share of tasks with the 'grass is green' filler")
    g.add_argument("--answer-weight", type=float, default=1.0,
                   help="loss = mean text loss + answer-weight * mean loss of the tasks' answer tokens")
    g.add_argument("--prompt-weight", type=float, default=0.0,
                   help="loss weight of a task's prompt tokens (0: the model never learns to write "
                        "task templates such as 'The pass key is' into ordinary text)")
    g.add_argument("--pack-tasks", type=int, default=1,
                   help="1: fill a task sequence with several tasks back to back; 0: one task, then text")
    g.add_argument("--pack-min", type=int, default=128, help="shortest packed task, in tokens")
    g.add_argument("--long-task-frac", type=float, default=0.6,
                   help="share of task sequences whose first task takes half the sequence or more")
    g.add_argument("--doc-start-frac", type=float, default=0.5, help="share of text windows starting at a document start")
    g.add_argument("--source-weights", default="", help="e.g. web:0.3,kjv:0.2 (default: meta.json)")
    g = ap.add_argument_group("final eval")
    g.add_argument("--eval-lengths", default="1024,2048,4096")
    g.add_argument("--eval-depths", default="0.1,0.3,0.5,0.7,0.9")
    g.add_argument("--eval-per-cell", type=int, default=2)
    return ap.parse_args(argv)


# ----------------------------------------------------------------------------- data
class Corpus:
    """Token streams of the natural-text sources, the filler and the tokenizer."""

    def __init__(self, data_dir, source_weights=""):
        with open(os.path.join(data_dir, "meta.json")) as f:
            self.meta = json.load(f)
        self.tok_path = os.path.join(data_dir, "tokenizer.model")
        self.names, self.arrays, self.doc_starts, w = [], [], [], []
        over = {}
        for kv in filter(None, source_weights.split(",")):
            k, v = kv.split(":")
            over[k] = float(v)
        for name, s in self.meta["sources"].items():
            weight = over.get(name, s["weight"])
            if weight <= 0:
                continue
            with lzma.open(os.path.join(data_dir, s["file"]), "rb") as f:
                arr = np.frombuffer(f.read(), dtype="<u2")
            self.names.append(name)
            self.arrays.append(arr)
            self.doc_starts.append(np.concatenate([[0], np.flatnonzero(arr == self.meta["eos_id"])[:-1] + 1]))
            w.append(weight)
        self.cum = np.cumsum(np.array(w) / sum(w))
        self.filler = tasks.Filler.load(os.path.join(data_dir, self.meta["filler"]["file"]))
        self.bos, self.eos = self.meta["bos_id"], self.meta["eos_id"]
        self.vocab_size = self.meta["vocab_size"]


ROLE_PROMPT, ROLE_TEXT, ROLE_ANSWER = 0, 1, 2


class MixtureDataset(torch.utils.data.Dataset):
    """Item i -> (ids[T+1] int64, roles[T+1] uint8), a pure function of (seed, i).
    roles[j] says what predicting ids[j] is: natural text (1), a task's prompt (0) or a task's
    answer (2); roles[0] (BOS) is unused."""

    def __init__(self, corpus, args):
        self.c, self.T, self.seed = corpus, args.seq_len, args.seed
        self.task_frac, self.classic = args.task_frac, args.classic_filler
        self.doc_start_frac = args.doc_start_frac
        self.pack, self.pack_min, self.long_frac = args.pack_tasks, args.pack_min, args.long_task_frac
        names, w = zip(*[(k, float(v)) for k, v in (kv.split(":") for kv in args.task_mix.split(","))])
        self.task_names, self.task_cum = names, np.cumsum(np.array(w) / sum(w))
        self.sp = None

    def __len__(self):
        return 1 << 62

    def _text(self, rng, n):
        s = int(np.searchsorted(self.c.cum, rng.random(), side="right"))
        s = min(s, len(self.c.arrays) - 1)
        arr, starts = self.c.arrays[s], self.c.doc_starts[s]
        if rng.random() < self.doc_start_frac:
            off = int(starts[rng.randrange(len(starts))])
        else:
            off = rng.randrange(len(arr))
        off = min(off, len(arr) - n)
        return arr[off:off + n].astype(np.int64)

    def __getitem__(self, i):
        if self.sp is None:
            import sentencepiece as spm
            self.sp = spm.SentencePieceProcessor(model_file=self.c.tok_path)
        rng = random.Random(f"{self.seed}:{i}")
        T = self.T
        ids = np.empty(T + 1, dtype=np.int64)
        w = np.full(T + 1, ROLE_TEXT, dtype=np.uint8)
        ids[0] = self.c.bos
        if rng.random() >= self.task_frac:
            ids[1:] = self._text(rng, T)
            return torch.from_numpy(ids), torch.from_numpy(w)
        # A task sequence packs tasks back to back (EOS between them) until it is full: the
        # first with a length drawn as before, the rest log-uniform in [lo, room], so each
        # step sees many answers and short contexts teach retrieval before long ones.
        count = lambda s: len(self.sp.encode(s))
        pos, first = 1, True
        while True:
            room = T + 1 - pos - 24  # room for the answer and EOS
            if room < 128:
                break
            k = int(np.searchsorted(self.task_cum, rng.random(), side="right"))
            name = self.task_names[min(k, len(self.task_names) - 1)]
            lo = min(self.pack_min, room // 2)
            if first and rng.random() < self.long_frac:
                n = rng.randint(room // 2, room)
            else:
                n = int(math.exp(rng.uniform(math.log(lo), math.log(room))))
            first = False
            filler = None if rng.random() < self.classic else self.c.filler
            try:
                prompt, answer = tasks.TASKS[name](n, rng.random(), rng, count, filler)
            except ValueError:  # n too small for this task (toy sequence lengths only)
                break
            p_ids = self.sp.encode(prompt)
            a_ids = self.sp.encode(answer)  # encode(prompt)+encode(answer) == encode(prompt+" "+answer)
            seq = (p_ids + a_ids + [self.c.eos])[:T + 1 - pos]
            ids[pos:pos + len(seq)] = seq
            w[pos:pos + len(p_ids)] = ROLE_PROMPT
            w[pos + len(p_ids):pos + min(len(seq), len(p_ids) + len(a_ids))] = ROLE_ANSWER
            pos += len(seq)
            if not self.pack:
                break
        if pos < T + 1:
            ids[pos:] = self._text(rng, T + 1 - pos)
        return torch.from_numpy(ids), torch.from_numpy(w)


class IndexStream(torch.utils.data.Sampler):
    def __init__(self, start):
        self.start = start

    def __iter__(self):
        i = self.start
        while True:
            yield i
            i += 1


# ----------------------------------------------------------------------------- model
def build_model(args, vocab_size):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads, head_dim=args.head_dim,
        max_position_embeddings=args.max_pos, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": args.rope_theta},
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=None,
        attention_bias=False, mlp_bias=False, initializer_range=0.02, hidden_act="silu",
    )
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(args.seed)
    return LlamaForCausalLM(cfg)


def weighted_loss(model, ids, roles, prompt_weight, answer_weight):
    """loss = weighted mean over text (and prompt) tokens + answer_weight * mean over answer
    tokens: the answers keep a fixed share of the objective however few they are. Also returns
    diagnostics as sums/counts: text loss, answer loss, answer-token accuracy."""
    inp, tgt, r = ids[:, :-1], ids[:, 1:], roles[:, 1:]
    h = model.model(input_ids=inp, use_cache=False).last_hidden_state
    logits = model.lm_head(h).float()
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), reduction="none").view_as(tgt)
    nat = (r == ROLE_TEXT).float()
    ans = (r == ROLE_ANSWER).float()
    w_lm = nat + prompt_weight * (r == ROLE_PROMPT).float()
    loss = (ce * w_lm).sum() / w_lm.sum().clamp(min=1.0)
    loss = loss + answer_weight * (ce * ans).sum() / ans.sum().clamp(min=1.0)
    with torch.no_grad():
        correct = (logits.argmax(-1) == tgt).float() * ans
        stats = torch.stack([(ce * nat).sum(), nat.sum(), (ce * ans).sum(), ans.sum(), correct.sum()])
    return loss, stats


# ----------------------------------------------------------------------------- save / export
TOKENIZER_CONFIG = {
    "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
    "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer", "legacy": False,
}


def write_tokenizer_files(dst, tok_path, max_len):
    shutil.copyfile(tok_path, os.path.join(dst, "tokenizer.model"))
    with open(os.path.join(dst, "tokenizer_config.json"), "w") as f:
        json.dump(dict(TOKENIZER_CONFIG, model_max_length=max_len), f, indent=2)
        f.write("\n")


def save_hf(model, dst, tok_path, max_shard_size="15MB"):
    """bf16 Hugging Face folder; sharded so that every file stays under the 16 MiB limit on
    files brought back from the GPU machine."""
    from transformers import GenerationConfig

    os.makedirs(dst, exist_ok=True)
    for fn in os.listdir(dst):
        if fn.endswith(".safetensors") or fn.endswith(".safetensors.index.json"):
            os.remove(os.path.join(dst, fn))
    m16 = model.to(torch.bfloat16)
    try:
        m16.save_pretrained(dst, safe_serialization=True, max_shard_size=max_shard_size)
    finally:
        model.to(torch.float32)
    GenerationConfig(bos_token_id=1, eos_token_id=2).save_pretrained(dst)
    write_tokenizer_files(dst, tok_path, model.config.max_position_embeddings)


# ----------------------------------------------------------------------------- eval
@torch.no_grad()
def greedy(model, ids, n_new, device):
    """Greedy continuation (KV cache); returns the new token ids."""
    x = torch.tensor([ids], device=device)
    out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n_new, do_sample=False,
                         eos_token_id=2, pad_token_id=2)
    return out[0, len(ids):].tolist()


@torch.no_grad()
def sample(model, ids, n_new, device, seed, temperature=0.8, top_p=0.9):
    torch.manual_seed(seed)
    x = torch.tensor([ids], device=device)
    out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n_new, do_sample=True,
                         temperature=temperature, top_p=top_p, top_k=0, eos_token_id=2, pad_token_id=2)
    return out[0, len(ids):].tolist()


def evaluate(model, corpus, args, device, deadline=None):
    """Passkey accuracy per length (half natural, half classic filler), multikey/events at 2k,
    and sample continuations. Items past `deadline` (a time.time() value) are skipped."""
    import re
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=corpus.tok_path)
    model.eval()
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    count = lambda s: len(sp.encode(s)) + 1
    res = {"passkey": {}, "other": {}, "samples": []}
    lengths = [int(x) for x in args.eval_lengths.split(",") if int(x) <= args.max_pos]
    depths = [float(x) for x in args.eval_depths.split(",")]
    with amp:
        tot = ok_all = 0
        for L in lengths:
            ok = n = 0
            for d in depths:
                for j in range(args.eval_per_cell):
                    if deadline and time.time() > deadline:
                        res["truncated"] = True
                        break
                    rng = random.Random(f"eval:{args.seed}:{L}:{d}:{j}")
                    filler = corpus.filler if j % 2 == 0 else None
                    prompt, ans = tasks.passkey(L, d, rng, count, filler)
                    new = greedy(model, [1] + sp.encode(prompt), len(ans) + 4, device)
                    m = re.search(r"\d+", sp.decode(new))
                    ok += int(bool(m) and m.group(0) == ans)
                    n += 1
            if n:
                res["passkey"][str(L)] = ok / n
            tot, ok_all = tot + n, ok_all + ok
        res["passkey"]["all"] = ok_all / max(1, tot)
        L = min(2048, args.seq_len)
        for name in ("multikey", "events"):
            ok = n = 0
            for j in range(6):
                if deadline and time.time() > deadline:
                    res["truncated"] = True
                    break
                rng = random.Random(f"eval-{name}:{args.seed}:{j}")
                prompt, ans = tasks.TASKS[name](L, (j + 0.5) / 6, rng, count, corpus.filler)
                got = sp.decode(greedy(model, [1] + sp.encode(prompt), len(sp.encode(ans)) + 3, device)).strip()
                ok += int(got.startswith(ans))
                n += 1
            if n:
                res["other"][f"{name}@{L}"] = ok / n
        for k, p in enumerate(["Once upon a time", "The king said to his servants,", "In the morning the farmer",
                  "Water is", "A good friend"]):
            ids = [1] + sp.encode(p)
            res["samples"].append({"prompt": p, "greedy": sp.decode(greedy(model, ids, 60, device)),
                                   "sampled": sp.decode(sample(model, ids, 60, device, args.seed + k))})
    model.train()
    return res


# ----------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    from transformers import LlamaForCausalLM

    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    os.makedirs(args.out, exist_ok=True)
    ckpt_dir = os.path.join(args.out, "ckpt")
    corpus = Corpus(args.data, args.source_weights)
    log(f"data: {', '.join(f'{n}={len(a) / 1e6:.2f}M' for n, a in zip(corpus.names, corpus.arrays))} tokens; "
        f"filler docs {len(corpus.filler.docs)}; device {device}")

    state = {"step": 0, "samples": 0, "tokens": 0, "train_seconds": 0.0, "runs_done": 0,
             "plan_runs": args.plan_runs or 3, "seed": args.seed, "history": []}
    if args.resume:
        if not os.path.exists(os.path.join(args.resume, "trainer_state.json")):
            sys.exit(f"--resume {args.resume}: no trainer_state.json there")
        with open(os.path.join(args.resume, "trainer_state.json")) as f:
            state.update(json.load(f))
        if args.plan_runs:
            state["plan_runs"] = args.plan_runs
        model = LlamaForCausalLM.from_pretrained(args.resume, dtype=torch.float32, attn_implementation="sdpa")
        args.seed = state["seed"]
        for k in ("seq_len", "batch_tokens"):
            if k in state.get("args", {}) and getattr(args, k) != state["args"][k]:
                log(f"note: {k} changed from {state['args'][k]} to {getattr(args, k)}")
        log(f"resumed {args.resume}: step {state['step']}, {state['tokens'] / 1e6:.1f}M tokens, "
            f"{state['train_seconds']:.0f}s trained, runs done {state['runs_done']}/{state['plan_runs']}")
    else:
        model = build_model(args, corpus.vocab_size)
    assert model.config.vocab_size == corpus.vocab_size, "tokenizer and model vocab differ"
    args.max_pos = model.config.max_position_embeddings
    assert args.answer_weight >= 0 and args.prompt_weight >= 0

    T = args.seq_len
    per_step = max(1, args.batch_tokens // T)
    micro = min(args.micro_batch, per_step)
    assert per_step % micro == 0, "--batch-tokens/--seq-len must be a multiple of --micro-batch"
    accum = per_step // micro
    if not args.eval_only:
        # data workers are forked before the model goes to the GPU
        workers = args.workers if args.workers >= 0 else max(1, min(8, (os.cpu_count() or 2) - 2))
        ds = MixtureDataset(corpus, args)
        loader = torch.utils.data.DataLoader(
            ds, batch_size=micro, sampler=IndexStream(state["step"] * per_step), num_workers=workers,
            pin_memory=device.type == "cuda", prefetch_factor=8 if workers else None,
            persistent_workers=False, multiprocessing_context="fork" if workers else None)
        it = iter(loader)
    model.to(device)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"model: {nparams / 1e6:.2f}M params (tied), {model.config.num_hidden_layers} layers, hidden "
        f"{model.config.hidden_size}, heads {model.config.num_attention_heads}/{model.config.num_key_value_heads}"
        f" x {model.config.head_dim}, bf16 size {nparams * 2 / 2**20:.1f} MiB")

    if args.eval_only:
        res = evaluate(model, corpus, args, device)
        print(json.dumps(res, indent=1), flush=True)
        with open(os.path.join(args.out, "eval.json"), "w") as f:
            json.dump(res, f, indent=1)
        return

    # ---- optimizer and schedule
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
                            fused=device.type == "cuda")
    deadline = T_START + args.minutes * 60 - args.reserve_s
    resumed = bool(args.resume)
    start_step = state["step"]
    runs_left = max(1, state["plan_runs"] - state["runs_done"])

    def progress(step, loop_elapsed, loop_budget):
        if args.total_steps:
            return step / args.total_steps
        if state["runs_done"] >= state["plan_runs"]:
            return 1.0
        done = state["train_seconds"] + loop_elapsed
        return done / (state["train_seconds"] + loop_budget * runs_left)

    def lr_at(step, p):
        f = min(1.0, (step + 1) / args.warmup_steps)
        if resumed:
            f = min(f, (step - start_step + 1) / args.rewarm_steps)
        s = 1.0 - args.decay_frac
        if p > s:
            x = min(1.0, (p - s) / args.decay_frac)
            f *= args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * x))
        return args.lr * f

    fwd = weighted_loss
    if args.compile:
        fwd = torch.compile(weighted_loss)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    log(f"training: seq {T}, {per_step} seqs/step ({micro} x {accum} accum), {per_step * T} tokens/step, "
        f"lr {args.lr}, task share {args.task_frac}, workers {workers}, "
        f"{'step-based' if args.total_steps else 'time-based'} schedule over {state['plan_runs']} runs "
        f"(this is run {state['runs_done'] + 1}), deadline in {deadline - time.time():.0f}s")
    logf = open(os.path.join(args.out, "train_log.jsonl"), "a")
    model.train()
    loop_t0 = time.time()
    loop_budget = max(1.0, deadline - loop_t0)
    step = state["step"]
    acc_stats = torch.zeros(5, device=device)
    last_t, last_tokens, tokens_run = time.time(), 0, 0
    wait_s = 0.0
    while True:
        now = time.time()
        if now >= deadline or (args.max_steps and step - start_step >= args.max_steps) or \
                (args.total_steps and step >= args.total_steps):
            break
        p = progress(step, now - loop_t0, loop_budget)
        lr = lr_at(step, p)
        for g in opt.param_groups:
            g["lr"] = lr
        for _ in range(accum):
            tw = time.time()
            ids, w = next(it)
            wait_s += time.time() - tw
            ids = ids.to(device, non_blocking=True)
            w = w.to(device, non_blocking=True)
            with amp:
                try:
                    loss, stats = fwd(model, ids, w, args.prompt_weight, args.answer_weight)
                except Exception as e:  # a failing torch.compile falls back to eager
                    if fwd is weighted_loss:
                        raise
                    log(f"torch.compile failed ({type(e).__name__}: {e}); continuing eagerly")
                    fwd = weighted_loss
                    loss, stats = fwd(model, ids, w, args.prompt_weight, args.answer_weight)
            (loss / accum).backward()
            acc_stats += stats.detach()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        tokens_run += per_step * T
        if step % 10 == 0 or step == start_step + 1:
            s = acc_stats.tolist()
            acc_stats.zero_()
            dt = time.time() - last_t
            tps = (tokens_run - last_tokens) / max(dt, 1e-9)
            last_t, last_tokens = time.time(), tokens_run
            rec = {"step": step, "progress": round(p, 4), "lr": lr, "loss": loss.item(),
                   "text_loss": s[0] / max(1, s[1]), "answer_loss": s[2] / max(1, s[3]),
                   "answer_acc": s[4] / max(1, s[3]), "grad_norm": float(gnorm), "tok_per_s": tps,
                   "data_wait_s": round(wait_s, 1), "elapsed_s": round(time.time() - T_START, 1),
                   "max_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1) if device.type == "cuda" else 0.0}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
            log(f"step {step:6d} p {p:.3f} lr {lr:.2e} loss {rec['loss']:.3f} text {rec['text_loss']:.3f} "
                f"ans {rec['answer_loss']:.3f} acc {rec['answer_acc']:.3f} gn {rec['grad_norm']:.2f} "
                f"{tps / 1e3:.0f}k tok/s wait {wait_s:.1f}s mem {rec['max_mem_gb']}G")
    loop_s = time.time() - loop_t0
    del it, loader  # stops the worker processes

    state["step"] = step
    state["samples"] = step * per_step
    state["tokens"] += tokens_run
    state["train_seconds"] += loop_s
    state["runs_done"] += 1
    state["args"] = {k: v for k, v in vars(args).items()}
    state["history"].append({"run": state["runs_done"], "steps": step - start_step, "tokens": tokens_run,
                             "loop_seconds": round(loop_s, 1),
                             "tok_per_s": round(tokens_run / max(loop_s, 1e-9))})
    log(f"run done: {step - start_step} steps, {tokens_run / 1e6:.1f}M tokens in {loop_s:.0f}s "
        f"({tokens_run / max(loop_s, 1e-9) / 1e3:.0f}k tok/s); total {state['tokens'] / 1e6:.1f}M tokens")

    save_hf(model, ckpt_dir, corpus.tok_path)
    with open(os.path.join(ckpt_dir, "trainer_state.json"), "w") as f:
        json.dump(state, f, indent=1)
    size = sum(os.path.getsize(os.path.join(ckpt_dir, x)) for x in os.listdir(ckpt_dir))
    log(f"saved {ckpt_dir} ({size / 2**20:.1f} MiB)")

    # ---- eval of the saved bf16 weights
    from transformers import LlamaForCausalLM as _L
    m16 = _L.from_pretrained(ckpt_dir, dtype=torch.bfloat16, attn_implementation="sdpa").to(device)
    if device.type != "cuda":
        m16 = m16.float()
    res = evaluate(m16, corpus, args, device, deadline=T_START + args.minutes * 60 - 8)
    res.update({"step": step, "tokens": state["tokens"], "runs_done": state["runs_done"]})
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump(res, f, indent=1)
    log(f"passkey accuracy {json.dumps(res['passkey'])}; other {json.dumps(res['other'])}")
    for s in res["samples"]:
        log(f"sample {s['prompt']!r}\n   greedy : {s['greedy']!r}\n   sampled: {s['sampled']!r}")
    log(f"finished in {time.time() - T_START:.0f}s")


if __name__ == "__main__":
    main()
