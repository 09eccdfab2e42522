#!/usr/bin/env bash
# Installs Retort's system dependencies (Debian packages only) and builds it in Release mode.
# Idempotent: packages already present are skipped, the build directory is reused.
# Usage: scripts/setup.sh [--no-build]   (BUILD_DIR, CMAKE_PREFIX_PATH and JOBS are honoured)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$here/build}"

packages=(
  build-essential cmake pkg-config
  libtorch-dev          # tensors, autograd, optimizers (CPU build)
  libopenblas-dev       # without it fp32 matmul falls back to reference BLAS (~30x slower)
  nlohmann-json3-dev    # config.json, tokenizer.json, safetensors headers
  libcli11-dev          # the CLI
  libutf8proc-dev       # Unicode normalisation and categories for the tokenizer
  libgtest-dev libgmock-dev googletest
  libbenchmark-dev
  libonnx-dev           # ONNX export: the schema, checker and shape inference
  libcurl4-openssl-dev  # retort download (the Hugging Face hub); OpenSSL for its checksums
  libgloo-dev           # data-parallel training: the headers of libtorch's c10d Gloo backend
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ONNX Runtime's CPU build, from npm's onnxruntime-node with the machine's Node.js (its post-install step would download more,
# so scripts are skipped). Optional: without it the tests that run ONNX Runtime skip, saying why.
ort_version=1.20.1
ort_dir="$build_dir/ort"
if [ ! -f "$ort_dir/node_modules/onnxruntime-node/package.json" ] && command -v npm >/dev/null; then
  mkdir -p "$ort_dir"
  npm install --prefix "$ort_dir" --ignore-scripts --no-audit --no-fund --silent "onnxruntime-node@$ort_version" \
    || echo "setup: npm could not install onnxruntime-node; ONNX Runtime checks will be skipped"
fi

[ "${1:-}" = "--no-build" ] && exit 0

jobs="${JOBS:-$(nproc)}"
cmake -S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${CMAKE_PREFIX_PATH:+-DCMAKE_PREFIX_PATH="$CMAKE_PREFIX_PATH"}
cmake --build "$build_dir" -j "$jobs"
