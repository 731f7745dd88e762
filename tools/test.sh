#!/usr/bin/env bash
# The README's second command, and exactly what CI runs: set up, build, run the whole test suite;
# then fuzz every parser for a time box (tools/fuzz.sh) and run the CPU test suite again under
# AddressSanitizer and UndefinedBehaviorSanitizer (tools/sanitize.sh). Every stage runs even when
# an earlier one failed; the exit status is non-zero when any did.
# GPU tests are reported as skipped on a machine without a CUDA device.
# FMNIST_FUZZ_SECONDS: seconds per fuzz target (default 60; 0 skips fuzzing);
# FMNIST_SANITIZE_TESTS=0 skips the ASan + UBSan pass (default 1: on; about 10 min on 2 cores, the
# whole flow stays under 30 min, see bench/RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
failed=()
(cd "${FMNIST_BUILD_DIR:-build}" && ctest --output-on-failure -j"$(nproc)" --timeout 1500) || failed+=(tests)
fuzz_seconds="${FMNIST_FUZZ_SECONDS:-60}"
if [ "$fuzz_seconds" != 0 ]; then
  echo
  tools/fuzz.sh "$fuzz_seconds" || failed+=(fuzz)
fi
if [ "${FMNIST_SANITIZE_TESTS:-1}" != 0 ]; then
  echo
  tools/sanitize.sh || failed+=(sanitized-tests)
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "test: FAILED: ${failed[*]}" >&2
  exit 1
fi
