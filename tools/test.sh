#!/usr/bin/env bash
# The README's second command, and exactly what CI runs: set up, build, run the whole test suite.
# GPU tests are reported as skipped on a machine without a CUDA device.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cd "${FMNIST_BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)" --timeout 1500
