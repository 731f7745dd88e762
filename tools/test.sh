#!/usr/bin/env bash
# The README's second command, and exactly what CI runs: set up, build, run the whole test suite;
# then fuzz every parser for a time box (tools/fuzz.sh) and run the CPU test suite again under
# AddressSanitizer and UndefinedBehaviorSanitizer (tools/sanitize.sh). Every stage runs even when
# an earlier one failed; the exit status is non-zero when any did.
# GPU tests are reported as skipped on a machine without a CUDA device. A failed stage's last lines
# are repeated at the end, so that the tail of a CI log says what failed.
# FMNIST_FUZZ_SECONDS: seconds per fuzz target (default 30 here, to keep CI's flow short; 0 skips
# fuzzing; tools/fuzz.sh alone fuzzes 60 s a target); FMNIST_SANITIZE_TESTS=0 skips the ASan + UBSan
# pass (default 1: on). The whole flow's duration on 2 cores is in bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
build_dir="${FMNIST_BUILD_DIR:-build}"
# Each stage's output is also kept in $build_dir/test-logs/STAGE.log, and the end of a failed
# stage's is printed again last, where a CI log's tail shows it.
logs="$build_dir/test-logs"
mkdir -p "$logs"
stage() {
  local name=$1
  shift
  "$@" 2>&1 | tee "$logs/$name.log"
}
failed=()
stage tests ctest --test-dir "$build_dir" --output-on-failure -j"$(nproc)" --timeout 1500 || failed+=(tests)
fuzz_seconds="${FMNIST_FUZZ_SECONDS:-30}"
if [ "$fuzz_seconds" != 0 ]; then
  echo
  stage fuzz tools/fuzz.sh "$fuzz_seconds" || failed+=(fuzz)
fi
if [ "${FMNIST_SANITIZE_TESTS:-1}" != 0 ]; then
  echo
  stage sanitized-tests tools/sanitize.sh || failed+=(sanitized-tests)
fi
if [ ${#failed[@]} -gt 0 ]; then
  for name in "${failed[@]}"; do
    echo "---- test: stage '$name' failed; the end of its output ($logs/$name.log):" >&2
    tail -n 50 "$logs/$name.log" >&2
  done
  echo "test: FAILED: ${failed[*]}" >&2
  exit 1
fi
