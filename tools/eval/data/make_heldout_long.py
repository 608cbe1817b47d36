#!/usr/bin/env python3
"""Writes heldout_long.txt: the first ~115k characters (28k tokens) of Matthew Henry's Concise
Commentary on the New Testament (public domain; Debian package `sword-comm-mhcc`, read with
`diatheke`), one commentary section per paragraph, and checks that it is not training text.

  apt-get install sword-comm-mhcc diatheke
  python3 tools/eval/data/make_heldout_long.py [--check-against .traindata-work/text]

The commentary is not in longview-tiny's training data (tools/train/README.md: KJV, WEB, GCIDE,
WordNet, Jargon File, Devil's Dictionary). --check-against reports how many of its 8-word
sequences occur anywhere in the extracted training text (the short Bible quotations it makes).
"""
import argparse
import glob
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
CHARS = 115000
K = 8


def extract():
    raw = subprocess.run(["diatheke", "-b", "MHCC", "-f", "plain", "-k",
                          "Matthew 1:1-Revelation 22:21"], capture_output=True, text=True,
                         errors="replace", check=True).stdout
    # The module repeats each section under many verse keys and prints "Book C:V: " first.
    raw = re.sub(r"(?m)^(?:[1-3] )?[A-Za-z ]+ \d+:\d+: ?", "", raw).replace("(MHCC)", "")
    raw = re.sub(r"\s+", " ", raw)
    out, seen, n = [], set(), 0
    for sec in re.split(r"\* Verses? [\d\-, ]+ \*", raw):
        sec = re.split(r"\sChapter \d+\s", sec)[0].strip()  # drop the chapter outlines
        if len(sec) < 300 or sec in seen:
            continue
        seen.add(sec)
        out.append(sec)
        n += len(sec)
        if n > CHARS:
            break
    text = "\n\n".join(out) + "\n"
    return re.sub(r"^Matthew Matthew,", "Matthew,", text)


def words(t):
    return re.findall(r"[a-z]+", t.lower())


def overlap(text, train_dir):
    train = set()
    for f in sorted(glob.glob(os.path.join(train_dir, "*.txt"))):
        ws = words(open(f, encoding="utf-8", errors="replace").read())
        train |= {hash(" ".join(ws[i:i + K])) for i in range(len(ws) - K + 1)}
    ws = words(text)
    sh = [hash(" ".join(ws[i:i + K])) for i in range(len(ws) - K + 1)]
    hits = [h in train for h in sh]
    best = cur = 0
    for h in hits:
        cur = cur + 1 if h else 0
        best = max(best, cur)
    print(f"{len(ws)} words; {sum(hits)}/{len(sh)} {K}-word sequences occur in the training "
          f"text; longest shared run {best + K - 1 if best else 0} words")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "heldout_long.txt"))
    ap.add_argument("--check-against", default=None,
                    help="folder of the extracted training text (tools/train/prepare_data.sh "
                         "leaves it in .traindata-work/text)")
    a = ap.parse_args()
    text = extract()
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {a.out}: {len(text)} characters")
    if a.check_against:
        overlap(text, a.check_against)


if __name__ == "__main__":
    main()
