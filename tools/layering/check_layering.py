#!/usr/bin/env python3
"""Checks the include fences of DESIGN.md §1: a folder includes only the folders it may depend on
(the order proto -> kernels -> kvcache -> engine -> scheduler -> server; clients see proto
only), and a folder's internal/ headers are included only from inside that folder.

    tools/layering/check_layering.py [--root DIR]      # exit 0: clean; 1: violations listed

Each violation is printed as `file:line: <folder> may not include "<header>" (<why>)`.
"""
import argparse
import os
import re
import sys

# Folder -> the folders its sources may include (besides itself). Sub-folders of engine/ are
# layers of their own, in this order: text, model, sampling, attention, runner, then the two
# backends side by side (cuda never includes cpu, nor the reverse).
ENGINE = ["engine/text", "engine/model", "engine/sampling", "engine/attention", "engine/runner"]
ALLOWED = {
    "common": [],
    "proto": ["common"],
    "kernels": ["common"],
    "kvcache": ["common", "kernels"],
    "engine/text": ["common"],
    "engine/model": ["common", "kernels", "engine/text"],
    "engine/sampling": ["common", "engine/text"],
    "engine/attention": ["common", "kernels", "engine/text", "engine/model"],
    "engine/runner": ["common", "kernels", "kvcache", "engine/text", "engine/model",
                      "engine/attention"],
    "engine/cpu": ["common", "kernels", "kvcache"] + ENGINE,
    "engine/cuda": ["common", "kernels", "kvcache"] + ENGINE,
    "scheduler": ["common", "kernels", "kvcache", "engine/cpu"] + ENGINE,
    "server": ["common", "proto", "kernels", "kvcache", "engine/cpu", "engine/cuda",
               "scheduler"] + ENGINE,
    "clients": ["common", "proto"],
}
# Not fenced: tests, fuzz targets and tools may use anything.
UNFENCED = ("tests", "fuzz", "tools", "build", "deploy", "docs", "models", ".venv", "dist")
SOURCE = re.compile(r".*\.(h|cc|cu|cuh)$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def folder_of(path):
    """The fenced folder a repo-relative path belongs to (longest match), or None."""
    best = None
    for f in ALLOWED:
        if path == f or path.startswith(f + "/"):
            if best is None or len(f) > len(best):
                best = f
    return best


def internal_owner(header):
    """For a header under some internal/ folder, the folder that owns it; else None."""
    parts = header.split("/")
    if "internal" not in parts:
        return None
    return "/".join(parts[: parts.index("internal")])


def check(root):
    violations = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d not in UNFENCED and not d.startswith(".")]
            continue
        for name in sorted(filenames):
            if not SOURCE.match(name):
                continue
            rel = os.path.join(rel_dir, name).replace(os.sep, "/")
            own = folder_of(rel)
            if own is None:
                continue
            with open(os.path.join(dirpath, name), encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    header = m.group(1)
                    target = folder_of(header)
                    if target is None:
                        continue  # a third-party or generated header outside the fenced tree
                    owner = internal_owner(header)
                    if owner is not None and not (rel == owner or rel.startswith(owner + "/")):
                        violations.append(f"{rel}:{lineno}: {own} may not include \"{header}\" "
                                          f"(private to {owner}/)")
                    elif target != own and target not in ALLOWED[own]:
                        violations.append(f"{rel}:{lineno}: {own} may not include \"{header}\" "
                                          f"({own} may use: {', '.join(ALLOWED[own]) or 'nothing'})")
    return violations


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    args = ap.parse_args()
    violations = check(os.path.abspath(args.root))
    for v in violations:
        print(v)
    print(f"layering: {len(violations)} violation(s)")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
