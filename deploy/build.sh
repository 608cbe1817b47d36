#!/usr/bin/env bash
# Installs dependencies (Debian 12 packages) and builds longview into build/.
# Usage: deploy/build.sh [extra cmake args...]     e.g. -DLONGVIEW_SANITIZE=ON
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install_deps.sh
BUILD_DIR="${LONGVIEW_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
