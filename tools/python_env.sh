#!/usr/bin/env bash
# Creates the Python environment of the end-to-end tests: .venv at the repo root (made with
# `python3 -m venv` when missing) with tools/requirements-test.txt installed. Idempotent and
# fast when already done: pip runs only when the requirements file changed since the last
# successful install or a pinned package is missing.
# Usage: tools/python_env.sh        (LONGVIEW_VENV=DIR to use another folder)
#        tools/python_env.sh plot   matplotlib for the committed plots, in .venv-plot
#                                   (tools/requirements-plot.txt; CI does not need it)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == plot ]]; then
  VENV="${LONGVIEW_VENV:-.venv-plot}"
  REQ=tools/requirements-plot.txt
  MODULES="matplotlib"
else
  VENV="${LONGVIEW_VENV:-.venv}"
  REQ=tools/requirements-test.txt
  MODULES="openai, pytest, grpc, grpc_tools, grpc_health, grpc_reflection, sentencepiece, tokenizers, jinja2"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
STAMP="$VENV/.longview-requirements.sha256"
WANT="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] &&
   "$VENV/bin/python" -c "import $MODULES" \
     2>/dev/null; then
  exit 0
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
echo "$WANT" > "$STAMP"
