#!/usr/bin/env bash
# Sets up (idempotent), builds, and runs every test with CTest. This is the README's test command and
# what CI runs. Needs ../shared beside the checkout (golden data, vocabulary, datasets).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$here/build}"
bash "$here/scripts/setup.sh"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" --timeout 900
