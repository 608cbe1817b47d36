#!/usr/bin/env python3
"""Turns the Debian text packages that prepare_data.sh installs into plain-text documents.

Standard library only (it runs under Debian's /usr/bin/python3). One output file per
source, `<WORK>/text/<source>.txt`, documents separated by a line holding only the ASCII
record separator "\\x1e". Typography is folded to ASCII (curly quotes, dashes) so the
tokenizer does not spend pieces on variants.

  extract_text.py --work .traindata-work --kjv kjv.txt --web web.txt
"""
import argparse
import os
import re
import zlib

DOC_SEP = "\n\x1e\n"

_TYPO = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": " -- ",
    "\u2013": "-", "\u2026": "...", "\u00a0": " ", "\u00b7": "", "\u2122": "(TM)",
}
_TYPO_RE = re.compile("|".join(map(re.escape, _TYPO)))


def ascii_typo(s: str) -> str:
    return _TYPO_RE.sub(lambda m: _TYPO[m.group(0)], s)


def squash(s: str) -> str:
    return re.sub(r"[ \t]+", " ", s).strip()


# ---------------------------------------------------------------- Bibles
def kjv_docs(path):
    """`bible -l100000 Genesis1:1-Revelation22:21` output: "Book N" headers, "  N text" verses
    (older versions print "Ge1:1 text"; both are accepted). One document per chapter."""
    docs, cur = [], []
    verse_re = re.compile(r"^\s+\d+\s+(.*)$")
    ref_re = re.compile(r"^[0-9]?[A-Za-z]+\d+:\d+\s+(.*)$")
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        m = verse_re.match(line)
        if m:
            cur.append(squash(m.group(1)))
            continue
        m = ref_re.match(line)
        if m:  # "Ge1:1 text": chapter boundary when the verse number is 1
            if re.match(r"^[0-9]?[A-Za-z]+\d+:1\s", line) and cur:
                docs.append(" ".join(cur))
                cur = []
            cur.append(squash(m.group(1)))
            continue
        if cur:  # a "Book N" header starts a new chapter
            docs.append(" ".join(cur))
            cur = []
    if cur:
        docs.append(" ".join(cur))
    return [ascii_typo(d) for d in docs if d]


def web_docs(path):
    """`diatheke -b engWEB2015eb -f plain` output: "Book C:V: text". One document per chapter."""
    docs, cur, cur_ch = [], [], None
    ref_re = re.compile(r"^\s*((?:[1-3] |I{1,3} )?[A-Za-z][A-Za-z ()]*? \d+):\d+: ?(.*)$")
    in_verse = False
    lines = [l.rstrip("\n") for l in open(path, encoding="utf-8", errors="replace")]
    for i, line in enumerate(lines):
        m = ref_re.match(line)
        if not m:
            # Poetry continues a verse on the lines right after it. A line after a blank
            # line or right before a verse is a heading (diatheke repeats a psalm's heading
            # before each verse); those, the module tag "(engWEB2015eb)" and the glossary
            # after Revelation are skipped.
            heading = i + 1 < len(lines) and ref_re.match(lines[i + 1])
            if in_verse and line.strip() and not heading and not line.startswith("("):
                cur.append(squash(line))
            in_verse = in_verse and bool(line.strip())
            continue
        in_verse = True
        ch, text = m.group(1), squash(m.group(2))
        if ch != cur_ch and cur:
            docs.append(" ".join(cur))
            cur = []
        cur_ch = ch
        if text:
            cur.append(text)
    if cur:
        docs.append(" ".join(cur))
    return [ascii_typo(d) for d in docs if d]


# ---------------------------------------------------------------- dictd databases
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64num(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64.index(c)
    return n


def dictd_entries(stem):
    """Yields the text of each distinct entry of /usr/share/dictd/<stem>.{index,dict.dz},
    in file order, skipping the 00-database-* info entries."""
    raw = open(stem + ".dict.dz", "rb").read()
    data = zlib.decompressobj(31).decompress(raw)  # dictzip is gzip-compatible
    spans = set()
    for line in open(stem + ".index", encoding="utf-8", errors="replace"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
            continue
        spans.add((_b64num(parts[1]), _b64num(parts[2])))
    for off, ln in sorted(spans):
        yield data[off:off + ln].decode("utf-8", errors="replace")


def _blocks(text):
    return [b for b in re.split(r"\n\s*\n", text) if b.strip()]


def devil_docs(stem, per_doc=25):
    out, docs = [], []
    for e in dictd_entries(stem):
        paras = []
        for b in _blocks(e):
            lines = b.split("\n")
            if all(l.startswith("    ") for l in lines if l.strip()):  # verse: keep lines
                paras.append("\n".join(squash(l) for l in lines if l.strip()))
            else:
                paras.append(squash(" ".join(lines)))
        out.append(ascii_typo(re.sub(r"[{}]", "", "\n".join(paras))))
        if len(out) == per_doc:
            docs.append("\n\n".join(out))
            out = []
    if out:
        docs.append("\n\n".join(out))
    return docs


def jargon_docs(stem, per_doc=20):
    out, docs = [], []
    for e in dictd_entries(stem):
        lines = e.split("\n")
        head = squash(lines[0]) if lines else ""
        rest = "\n".join(lines[1:])
        blocks = _blocks(rest)
        if blocks and re.match(r"^\s*/.*/", blocks[0]):  # pronunciation / part-of-speech line
            pos = re.sub(r"^\s*/[^/]*/,?\s*", "", blocks[0].split("\n")[0]).strip()
            if pos:
                head = f"{head} ({pos.rstrip('.')})"
            body = "\n".join(blocks[0].split("\n")[1:])
            blocks = ([body] if body.strip() else []) + blocks[1:]
        paras = []
        for b in blocks:
            lines_b = b.split("\n")
            if all(l.startswith("        ") for l in lines_b if l.strip()):  # quoted verse/code
                paras.append("\n".join(squash(l) for l in lines_b if l.strip()))
            else:
                paras.append(squash(" ".join(lines_b)))
        if not paras:
            continue
        text = head + ": " + "\n".join(paras)
        out.append(ascii_typo(re.sub(r"[{}]", "", text)))
        if len(out) == per_doc:
            docs.append("\n\n".join(out))
            out = []
    if out:
        docs.append("\n\n".join(out))
    return docs


_GC_MARK = re.compile(r"\[(?:[0-9]{4} )?(?:Webster|PJC|WordNet|Century|Webster 1913 Suppl\.|RN|Chambers|Johnson|Brande|Note)[^\]]*\]")
_GC_ENT = re.compile(r"\[[^\]\s]{1,7}\]")


def gcide_docs(stem, per_doc=30):
    out, docs = [], []
    for e in dictd_entries(stem):
        lines = e.split("\n")
        if not lines or not lines[0].strip() or lines[0].startswith("00"):
            continue
        head = lines[0]
        head = re.sub(r"\\[^\\]*\\", "", head)          # pronunciation \Ab"so*lute\
        head = re.sub(r"\[[^\]]*\]?.*$", "", head)       # etymology (may continue on the next lines)
        head = squash(head).rstrip(",")
        body = "\n".join(lines[1:])
        body = re.sub(r"^\s*\[[^\]]*\]\s*$", "", body, flags=re.M)  # "[1913 Webster]" lines
        body = _GC_MARK.sub("", body)
        blocks = []
        for b in _blocks(body):
            t = squash(" ".join(b.split("\n")))
            if not t or t.startswith("Syn:") or t.startswith("Syn.") or t.startswith("["):
                continue
            if t.startswith("See ") and len(t) < 40:
                continue
            blocks.append(t)
        if not blocks:
            continue
        text = head + ": " + " ".join(blocks)
        text = re.sub(r"[{}]", "", text)
        text = _GC_ENT.sub("", text)
        text = text.replace("\\", "").replace("*", "").replace("`", "'")
        text = re.sub(r" +([,.;:])", r"\1", squash(text))
        out.append(ascii_typo(text))
        if len(out) == per_doc:
            docs.append("\n".join(out))
            out = []
    if out:
        docs.append("\n".join(out))
    return docs


def wordnet_docs(wndir, per_doc=40):
    pos_name = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}
    docs = []
    for pos in ("noun", "verb", "adj", "adv"):
        out = []
        for line in open(os.path.join(wndir, "data." + pos), encoding="utf-8", errors="replace"):
            if line.startswith("  ") or "|" not in line:
                continue  # licence header
            fields, gloss = line.split("|", 1)
            f = fields.split()
            n = int(f[3], 16)
            words = [re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in f[4:4 + 2 * n:2]]
            gloss = squash(gloss)
            if not gloss:
                continue
            out.append(f"{', '.join(words)} ({pos_name[pos]}): {gloss}")
            if len(out) == per_doc:
                docs.append("\n".join(out))
                out = []
        if out:
            docs.append("\n".join(out))
    return [ascii_typo(d) for d in docs]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True)
    ap.add_argument("--kjv", required=True, help="output of the bible command")
    ap.add_argument("--web", required=True, help="output of diatheke for engWEB2015eb")
    ap.add_argument("--dictd", default="/usr/share/dictd")
    ap.add_argument("--wordnet", default="/usr/share/wordnet")
    a = ap.parse_args()
    os.makedirs(os.path.join(a.work, "text"), exist_ok=True)
    sources = {
        "kjv": lambda: kjv_docs(a.kjv),
        "web": lambda: web_docs(a.web),
        "devil": lambda: devil_docs(os.path.join(a.dictd, "devil")),
        "jargon": lambda: jargon_docs(os.path.join(a.dictd, "jargon")),
        "gcide": lambda: gcide_docs(os.path.join(a.dictd, "gcide")),
        "wordnet": lambda: wordnet_docs(a.wordnet),
    }
    for name, fn in sources.items():
        docs = fn()
        path = os.path.join(a.work, "text", name + ".txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(DOC_SEP.join(docs) + "\n")
        print(f"{name:8s} {len(docs):7d} docs {os.path.getsize(path) / 1e6:7.2f} MB -> {path}", flush=True)


if __name__ == "__main__":
    main()
