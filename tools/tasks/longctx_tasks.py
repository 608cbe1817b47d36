#!/usr/bin/env python3
"""Synthetic long-context tasks shared by training (tools/train/train.py) and evaluation.

Plain Python (no torch). Every generator has the signature

    gen(n_tokens, depth, rng, count_tokens, filler=None) -> (prompt_text, answer_text)

* n_tokens: the prompt's length budget; the prompt satisfies count_tokens(prompt) <= n_tokens
  and comes as close to it as the word granularity allows (usually within a few tokens).
* depth: where the fact asked about sits, as a fraction (0..1) of the haystack.
* rng: a random.Random; the output is a pure function of its state and the other arguments.
* count_tokens: text -> token count (e.g. lambda s: len(sp.encode(s)) + 1 to count BOS too).
* filler: a Filler (natural text or the classic "The grass is green..." lines); None = classic.

The prompt ends right where the answer starts; the answer is returned without a leading
space, and a model continues the prompt with " " + answer. Tasks:

  passkey   "The pass key is 48213. Remember it. 48213 is the pass key." hidden in filler;
            asked with "What is the pass key? The pass key is"            -> "48213"
  multikey  many "The value for key 7f3a-xqz is 48213." lines in filler; one is asked for
            "What is the value for key 7f3a-xqz? The value for key 7f3a-xqz is" -> "48213"
  events    a timestamped stream "[t=812] a red van stops at gate 3."; asked with
            "Question: at t=812, what stopped at gate 3? Answer:"       -> "a red van"

CLI (writes JSONL for the eval harness; one object per line with task, length, depth,
index, prompt, answer, prompt_tokens, needle_pos):

  python3 tools/tasks/longctx_tasks.py --task passkey --tokenizer models/x/tokenizer.model \\
      --lengths 1024,2048,4096,8192 --depths 0.1,0.3,0.5,0.7,0.9 --per-cell 5 --seed 0 \\
      --out file.jsonl [--filler .traindata/filler.txt.xz | --filler classic]

`prompt_tokens` counts BOS (the CLI's count is len(encode(prompt)) + 1), so a prompt for
length L fills at most L positions of the context before the answer is generated.
`needle_pos` is the fraction of the prompt's tokens that precede the needle.
"""
import argparse
import json
import lzma
import os
import random
import re
import sys

CLASSIC = ("The grass is green. The sky is blue. The sun is yellow. "
           "Here we go. There and back again.")

PASSKEY_INTRO = ("There is an important piece of information hidden inside a lot of "
                 "irrelevant text. Find it and memorize it. I will quiz you about the "
                 "important information there.")
MULTIKEY_INTRO = ("Below is a text with many keys and their values hidden in it. "
                  "Memorize them. I will ask you for the value of one key.")
EVENTS_INTRO = "The following is a log of events at the north yard, with times in seconds."


class Filler:
    """A source of filler words. kind="classic" repeats CLASSIC; kind="natural" draws runs
    of whole sentences from documents (one string each), starting at a random sentence."""

    def __init__(self, docs=None):
        self.kind = "classic" if not docs else "natural"
        self.docs = []
        for d in docs or []:
            words = d.split()
            if len(words) >= 20:
                self.docs.append(words)

    @staticmethod
    def load(path):
        """path: "classic", a .txt or .txt.xz file with one document per line."""
        if path in (None, "", "classic"):
            return Filler()
        opener = lzma.open if path.endswith(".xz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            return Filler([l for l in f if l.strip()])

    def words(self, rng, n):
        """At least n words of filler (fewer only if n <= 0)."""
        out = []
        if self.kind == "classic":
            base = CLASSIC.split()
            while len(out) < n:
                out.extend(base)
            return out
        while len(out) < n:
            doc = self.docs[rng.randrange(len(self.docs))]
            # start at a sentence start
            starts = [0] + [i + 1 for i, w in enumerate(doc[:-1]) if w[-1] in ".!?"]
            out.extend(doc[starts[rng.randrange(len(starts))]:])
        return out


def _fit(build, count, n, kmax):
    """Largest k in [0, kmax] with count(build(k)) <= n, found with a few measurements
    (count grows with k, unevenly: some stretches of filler cost more tokens per word).
    Returns (k, text, tokens)."""
    t0 = build(0)
    c0 = count(t0)
    if c0 > n:
        raise ValueError(f"n_tokens={n} is too small for this task (needs > {c0})")
    lo = (0, t0, c0)  # largest k known to fit
    hi = None  # (k, tokens) of the smallest k known not to fit
    k = min(kmax, max(1, int((n - c0) / 1.35)))
    for it in range(24):
        t = build(k)
        c = count(t)
        if c <= n:
            lo = (k, t, c)
        else:
            hi = (k, c)
        if n - lo[2] <= 1 or lo[0] >= kmax or (hi and hi[0] - lo[0] <= 1):
            break
        if hi is None:  # extrapolate from the average rate so far
            rate = max(0.2, (c - c0) / k)
            k = min(kmax, lo[0] + max(1, int((n - lo[2]) / rate)))
        elif it % 3 == 2:  # bisection now and then guarantees progress
            k = (lo[0] + hi[0]) // 2
        else:  # interpolate inside the bracket
            span = hi[0] - lo[0]
            k = lo[0] + min(span - 1, max(1, int(span * (n - lo[2]) / max(1, hi[1] - lo[2]))))
    return lo


def _place(prefix_count, k, depth, total):
    """Word index p in [0, k] such that the text up to the needle, measured by
    prefix_count(p), holds about depth * total tokens."""
    want = depth * total
    c_min = prefix_count(0)
    p = int(round(depth * k))
    for _ in range(4):
        c = prefix_count(p)
        if abs(c - want) <= 1 or p <= 0 and c >= want or p >= k and c <= want:
            break
        rate = max(0.2, (c - c_min) / p) if p > 0 else 1.35
        p = max(0, min(k, p + int(round((want - c) / rate))))
    return p


def _join(*parts):
    return " ".join(p for p in parts if p)


def _digits(rng, lo=5, hi=7):
    n = rng.randint(lo, hi)
    return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))


def passkey(n_tokens, depth, rng, count_tokens, filler=None, key=None):
    """Pass key of 5-7 digits at `depth` of the filler."""
    filler = filler or Filler()
    key = key or _digits(rng)
    needle = f"The pass key is {key}. Remember it. {key} is the pass key."
    question = "What is the pass key? The pass key is"
    words = filler.words(rng, n_tokens)

    def build(k, p=None):
        p = int(round(depth * k)) if p is None else p
        return _join(PASSKEY_INTRO, " ".join(words[:p]), needle, " ".join(words[p:k]), question)

    k, text, c = _fit(build, count_tokens, n_tokens, len(words))
    p = _place(lambda p: count_tokens(_join(PASSKEY_INTRO, " ".join(words[:p]))), k, depth, c)
    t2 = build(k, p)
    if t2 != text and count_tokens(t2) <= n_tokens:
        text = t2
    return text, key


_HEX = "0123456789abcdef"
_LET = "abcdefghijklmnopqrstuvwxyz"


def _key(rng):
    return "".join(rng.choice(_HEX) for _ in range(4)) + "-" + "".join(rng.choice(_LET) for _ in range(3))


def multikey(n_tokens, depth, rng, count_tokens, filler=None, n_pairs=None):
    """n_pairs key/value sentences spread through the filler (default: 2 to one per 150
    tokens); the one asked for sits at `depth`."""
    filler = filler or Filler()
    if n_pairs is None:
        n_pairs = rng.randint(2, max(2, n_tokens // 150))
    keys, vals = set(), []
    while len(keys) < n_pairs:
        keys.add(_key(rng))
    keys = sorted(keys)
    rng.shuffle(keys)
    vals = [_digits(rng, 5, 5) for _ in keys]
    qi = 0  # keys[0] is the one asked for
    # positions as fractions of the filler; the asked key at `depth`
    fr = [depth] + [rng.random() for _ in range(n_pairs - 1)]
    sents = [f"The value for key {keys[i]} is {vals[i]}." for i in range(n_pairs)]
    question = f"What is the value for key {keys[qi]}? The value for key {keys[qi]} is"
    words = filler.words(rng, n_tokens)

    def build(k, pq=None, upto_query=False):
        pos = [int(round(f * k)) for f in fr]
        if pq is not None:
            pos[qi] = pq
        parts, prev = [MULTIKEY_INTRO], 0
        for i in sorted(range(n_pairs), key=lambda i: (pos[i], i != qi)):
            p = max(prev, pos[i])
            parts.append(" ".join(words[prev:p]))
            if upto_query and i == qi:
                return _join(*parts)
            parts.append(sents[i])
            prev = p
        parts.append(" ".join(words[prev:k]))
        parts.append(question)
        return _join(*parts)

    k, text, c = _fit(build, count_tokens, n_tokens, len(words))
    pq = _place(lambda p: count_tokens(build(k, p, upto_query=True)), k, depth, c)
    t2 = build(k, pq)
    if t2 != text and count_tokens(t2) <= n_tokens:
        text = t2
    return text, vals[qi]


_COLORS = ["red", "blue", "green", "white", "black", "yellow", "grey", "brown", "orange", "silver"]
_THINGS = ["van", "truck", "bus", "car", "bicycle", "tractor", "taxi", "cart", "dog", "horse",
           "courier", "nurse", "farmer", "robot", "drone", "wagon", "scooter", "ambulance"]
_VERBS = [("stops at", "stopped at"), ("arrives at", "arrived at"), ("waits at", "waited at"),
          ("leaves", "left"), ("passes", "passed"), ("turns at", "turned at")]
_PLACES = ["gate", "dock", "platform", "door", "bay", "ramp"]


def events(n_tokens, depth, rng, count_tokens, filler=None):
    """A stream of timestamped events (strictly increasing times, so each time is unique);
    the event asked about sits at `depth` of the stream. `filler` is unused."""
    kmax = n_tokens  # each event is > 1 token
    evs, t = [], rng.randint(1, 400)
    for _ in range(kmax // 8 + 2):  # events are >= ~12 tokens; enough for any fit
        t += rng.randint(1, 9)
        color = rng.choice(_COLORS)
        what = f"{'an' if color[0] in 'aeiou' else 'a'} {color} {rng.choice(_THINGS)}"
        verb = rng.choice(_VERBS)
        place = f"{rng.choice(_PLACES)} {rng.randint(1, 12)}"
        evs.append((t, what, verb, place))

    def q_index(k):
        return min(k - 1, int(round(depth * (k - 1)))) if k else 0

    def build(k):
        k = max(k, 1)
        lines = [f"[t={e[0]}] {e[1]} {e[2][0]} {e[3]}." for e in evs[:k]]
        e = evs[q_index(k)]
        q = f"Question: at t={e[0]}, what {e[2][1]} {e[3]}? Answer:"
        return EVENTS_INTRO + "\n" + "\n".join(lines) + "\n" + q

    k, text, _ = _fit(build, count_tokens, n_tokens, len(evs))
    return text, evs[q_index(max(k, 1))][1]


TASKS = {"passkey": passkey, "multikey": multikey, "events": events}


def needle_fraction(task, prompt, answer, encode):
    """Fraction of the prompt's tokens before the fact asked about (for checks/reports)."""
    if task == "passkey":
        i = prompt.find("The pass key is " + answer)
    elif task == "multikey":
        m = re.search(r"value for key (\S+)\? The value", prompt)
        i = prompt.find(f"The value for key {m.group(1)} is {answer}.") if m else -1
    else:
        m = re.search(r"Question: at t=(\d+),", prompt)
        i = prompt.find(f"[t={m.group(1)}]") if m else -1
    if i < 0:
        return None
    return len(encode(prompt[:i])) / max(1, len(encode(prompt)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="passkey", help="passkey, multikey, events, or a comma list, or all")
    ap.add_argument("--tokenizer", required=True, help="sentencepiece tokenizer.model")
    ap.add_argument("--lengths", default="1024,2048,4096")
    ap.add_argument("--depths", default="0.1,0.3,0.5,0.7,0.9")
    ap.add_argument("--per-cell", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--filler", default=None,
                    help="'classic', or a text file (.txt/.txt.xz, one document per line); "
                         "default: .traindata/filler.txt.xz when present, else classic")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)
    count = lambda s: len(sp.encode(s)) + 1  # + BOS
    fpath = a.filler
    if fpath is None:
        here = os.path.dirname(os.path.abspath(__file__))
        cand = os.path.join(here, "..", "..", ".traindata", "filler.txt.xz")
        fpath = cand if os.path.exists(cand) else "classic"
    filler = Filler.load(fpath)
    tasks = list(TASKS) if a.task == "all" else a.task.split(",")
    lengths = [int(x) for x in a.lengths.split(",")]
    depths = [float(x) for x in a.depths.split(",")]
    n = 0
    with open(a.out, "w", encoding="utf-8") as f:
        for task in tasks:
            for L in lengths:
                for d in depths:
                    for i in range(a.per_cell):
                        rng = random.Random(f"{a.seed}:{task}:{L}:{d}:{i}")
                        prompt, answer = TASKS[task](L, d, rng, count, filler)
                        rec = {"task": task, "length": L, "depth": d, "index": i, "seed": a.seed,
                               "filler": filler.kind, "prompt": prompt, "answer": answer,
                               "prompt_tokens": count(prompt),
                               "needle_pos": needle_fraction(task, prompt, answer, sp.encode)}
                        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                        n += 1
    print(f"wrote {n} tasks to {a.out} (filler: {filler.kind})", file=sys.stderr)


if __name__ == "__main__":
    main()
