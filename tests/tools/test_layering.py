"""The include fences (tools/layering/check_layering.py): the real tree is clean, and a copy of it
with one planted upward include, or one include of another folder's internal/ header, fails with
the file and line named."""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "tools", "layering", "check_layering.py")
FENCED = ["common", "proto", "kernels", "kvcache", "engine", "scheduler", "server"]


def run(root):
    return subprocess.run([sys.executable, SCRIPT, "--root", root], capture_output=True,
                          text=True, timeout=120)


def copy_tree():
    tmp = tempfile.mkdtemp(prefix="lv_layering_")
    for d in FENCED:
        if os.path.isdir(os.path.join(ROOT, d)):
            shutil.copytree(os.path.join(ROOT, d), os.path.join(tmp, d))
    return tmp


def plant(root, rel, line):
    with open(os.path.join(root, rel), "a") as f:
        f.write(line + "\n")
    with open(os.path.join(root, rel)) as f:
        return sum(1 for _ in f)


def test_real_tree_is_clean():
    r = run(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 violation(s)" in r.stdout


def test_upward_include_fails():
    tmp = copy_tree()
    try:
        assert run(tmp).returncode == 0
        lineno = plant(tmp, "kvcache/block_pool.h", '#include "scheduler/engine_loop.h"')
        r = run(tmp)
        assert r.returncode == 1, r.stdout
        assert f"kvcache/block_pool.h:{lineno}: kvcache may not include" in r.stdout, r.stdout
        assert "1 violation(s)" in r.stdout
    finally:
        shutil.rmtree(tmp)


def test_backends_do_not_include_each_other():
    tmp = copy_tree()
    try:
        plant(tmp, "engine/cuda/cuda_model_runner.h", '#include "engine/cpu/cpu_model.h"')
        r = run(tmp)
        assert r.returncode == 1 and "engine/cuda may not include" in r.stdout, r.stdout
    finally:
        shutil.rmtree(tmp)


def test_internal_header_of_another_folder_fails():
    tmp = copy_tree()
    try:
        plant(tmp, "server/main.cc", '#include "engine/cuda/internal/step_meta.h"')
        r = run(tmp)
        assert r.returncode == 1, r.stdout
        assert "private to engine/cuda/" in r.stdout, r.stdout
    finally:
        shutil.rmtree(tmp)
