#!/usr/bin/env bash
# Fuzzes every parser with libFuzzer for a time box: tools/fuzz.sh [SECONDS] (default 60 per target).
#
# Configures and builds the fuzz harnesses of tests/fuzz with clang (-fsanitize=fuzzer,address,
# undefined; CUDA off) into $FMNIST_FUZZ_BUILD_DIR (default build-fuzz), then runs each target from a
# scratch copy of its seeds (tests/fuzz/seeds/<target>, plus the bad-file corpus tests/corpus for
# the file readers), so the repository is never modified; targets run $FMNIST_FUZZ_JOBS at a time
# (default: the number of cores). Prints one line per target (executions, coverage, corpus growth)
# and fails when any target crashes, leaks, times out (10 s for one input) or runs out of memory
# (2 GiB); the input that did it is kept under $FMNIST_FUZZ_BUILD_DIR/fuzz-runs/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
build_dir="${FMNIST_FUZZ_BUILD_DIR:-build-fuzz}"
jobs="${FMNIST_FUZZ_JOBS:-$(nproc)}"
targets=(idx safetensors cli config report)
declare -A max_len=([idx]=16384 [safetensors]=65536 [cli]=1024 [config]=4096 [report]=16384)
declare -A bad_files=([idx]=tests/corpus [safetensors]=tests/corpus)

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (tools/setup.sh installs clang and libclang-rt-14-dev)" >&2; exit 1; }
done
start=$(date +%s)
cmake -S . -B "$build_dir" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DFMNIST_FUZZ=ON \
  -DFMNIST_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" >/dev/null
cmake --build "$build_dir" --target fmnist_fuzzers -j"$(nproc)" >"$build_dir/fuzz-build.log" 2>&1 ||
  { cat "$build_dir/fuzz-build.log" >&2; echo "fuzz: build failed" >&2; exit 1; }
echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - start )) s; fuzzing each for ${seconds} s, ${jobs} at a time"

runs="$build_dir/fuzz-runs"
rm -rf "$runs"
fuzz_one() {
  local target=$1 dir="$runs/$1"
  mkdir -p "$dir/corpus"
  cp tests/fuzz/seeds/"$target"/* "$dir/corpus/"
  local extra=${bad_files[$target]:-}
  if [ -n "$extra" ] && [ -d "$extra" ]; then
    find "$extra" -type f ! -name '*.md' -print0 | while IFS= read -r -d '' f; do
      cp "$f" "$dir/corpus/bad-$(printf '%s' "$f" | md5sum | cut -c1-12)"
    done
  fi
  ls "$dir/corpus" | wc -l >"$dir/seeds"
  # -max_total_time bounds the fuzzing; timeout(1) only guards against a hang outside of it.
  local rc=0
  timeout $(( seconds + 120 )) "$build_dir/tests/fuzz/fuzz_$target" "$dir/corpus" \
    -max_total_time="$seconds" -max_len="${max_len[$target]}" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$dir/" >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
}

pids=()
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  fuzz_one "$target" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done

failed=()
total_runs=0
for target in "${targets[@]}"; do
  dir="$runs/$target"
  rc=$(cat "$dir/rc" 2>/dev/null || echo "?")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  # The last status line, e.g. "#30112  DONE   cov: 351 ft: 701 corp: 48/11Kb ...".
  status=$(grep -E '^#[0-9]+' "$dir/log" | grep -E ' cov: ' | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$status")
  artifacts=$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) -printf '%f ')
  total_runs=$(( total_runs + ${execs:-0} ))
  verdict="no crash, leak or timeout"
  if [ "$rc" != 0 ] || [ -n "$artifacts" ]; then
    verdict="FAILED (exit $rc${artifacts:+; kept $artifacts}; log $dir/log)"
    failed+=("$target")
  fi
  printf 'fuzz %-12s %9s runs (%s/s)  cov: %-5s ft: %-6s  corpus: %s seeds -> %s inputs (%s)  %s\n' \
    "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$(cat "$dir/seeds")" \
    "$(ls "$dir/corpus" | wc -l)" "${corp#*/}" "$verdict"
done
for target in "${failed[@]}"; do
  echo "---- fuzz_$target: the end of its log ($(grep -m1 -o 'Seed: [0-9]*' "$runs/$target/log" 2>/dev/null || echo 'no seed'); -seed=N repeats its mutations)" >&2
  grep -v -E '^#[0-9]+[[:space:]]' "$runs/$target/log" | tail -40 >&2
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproduce: $build_dir/tests/fuzz/fuzz_TARGET FILE)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, $total_runs runs in $(( $(date +%s) - start )) s, no crash, leak or timeout"
