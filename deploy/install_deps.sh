#!/usr/bin/env bash
# Installs longview's build and test dependencies from Debian 12's packages, by name.
# Idempotent: packages already present are left alone; apt-get update runs only when needed.
# Usage: deploy/install_deps.sh            (as root, or with sudo available)
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsentencepiece-dev sentencepiece librocksdb-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev libboost-dev
  libpcre2-dev libutf8proc-dev
  python3 python3-venv
  # deploy/fuzz.sh: clang, libFuzzer and the sanitizer runtimes (libclang-rt-14-dev: `dpkg -S
  # libclang_rt.fuzzer-x86_64.a`), llvm-symbolizer for stack traces (llvm-14), ccache.
  clang-14 libclang-rt-14-dev llvm-14 ccache
)

SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
