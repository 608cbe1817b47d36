#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test with ctest (its summary is the last lines).
# Usage: deploy/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/build.sh
tools/python_env.sh  # .venv with the e2e tests' Python clients (openai, grpcio, pytest)
BUILD_DIR="${LONGVIEW_BUILD_DIR:-build}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"
