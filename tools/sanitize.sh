#!/usr/bin/env bash
# The whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer: configures
# $FMNIST_ASAN_BUILD_DIR (default build-asan) with FMNIST_SANITIZE=ON (gcc; -O1 -g1 with assertions
# on) and the CUDA backend emulated (FMNIST_CUDA=EMULATE: compiled by g++, its kernels run by the
# CPU kernel emulator of tests/kernel_emu, so fmnist_gpu_tests' [sanitize] cases run here too, with
# ASan in compute-sanitizer's place), builds everything and runs ctest there. Any sanitizer report
# fails its test (the sanitizers abort on the first error, leaks included). Extra arguments go to
# ctest (e.g. -R idx).
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${FMNIST_ASAN_BUILD_DIR:-build-asan}"
start=$(date +%s)
cmake -S . -B "$build_dir" -DFMNIST_SANITIZE=ON -DFMNIST_CUDA=EMULATE -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" >"$build_dir/sanitize-build.log" 2>&1 ||
  { cat "$build_dir/sanitize-build.log" >&2; echo "sanitize: build failed" >&2; exit 1; }
built=$(date +%s)
echo "sanitize: built $build_dir (ASan + UBSan) in $(( built - start )) s; running its tests"

# Child processes (the CLI tests run the instrumented fmnist) inherit these.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Leaks that third-party libraries make once per process (see the file) are not reported.
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tools/lsan-suppressions.txt:print_suppressions=0}"
cd "$build_dir"
exec ctest --output-on-failure -j"$(nproc)" --timeout 1500 "$@"
