#!/usr/bin/env bash
# The one prepared check for a GPU machine without network (issue 3, item 9). In order:
#   info        card, driver, nvcc, cuDNN (toolkit or Python's nvidia-cudnn), compute-sanitizer
#   configure   -DFMNIST_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 (Ninja when present)
#   build       all targets, all cores
#   ctest       every CTest test except the GPU binary (run next, verbosely)
#   gpu-tests   fmnist_gpu_tests: every GPU op and training step against the CPU reference
#   memcheck    fmnist_gpu_tests "[sanitize]" under compute-sanitizer --tool memcheck
#   racecheck   the same under --tool racecheck
#   train-ae256 fmnist train --model ae --latent 256 --epochs 2 --device cuda on the real data
#   train-c256  the same for --model classifier
#   cpu-*       (only with FMNIST_GPU_CHECK_CPU=1) the same two runs on --device cpu, and a
#               comparison of the final validation figures
# Every step is timed and logged in full to LOGDIR/NN-step.log; a failing step is recorded and the
# next one runs; a summary table (step, status, seconds, key figure) is printed last and written
# to LOGDIR/summary.txt. Exit status: 0 when every step that ran passed, 1 otherwise.
#
# Usage: tools/gpu_check.sh [DATA_DIR [LOG_DIR]]
#   DATA_DIR  Fashion-MNIST IDX files (.gz or not); default $FMNIST_DATA_DIR, else ./data/fashion-mnist
#   LOG_DIR   default $OUT, else ./gpu-logs
# Environment:
#   FMNIST_GPU_CHECK_BUDGET     seconds for the whole check (default 470): a step that would start
#                               with less than 20 s left is SKIPPED, and each step's timeout is cut
#                               to what is left
#   FMNIST_GPU_CHECK_BUILD_DIR  build directory (default build-gpu-check)
#   FMNIST_GPU_CHECK_PREBUILT   a build directory made elsewhere (same CUDA major version): skip
#                               configure and build, and run its binaries (ctest is skipped: a
#                               CTest tree holds the paths of the machine that made it)
#   FMNIST_GPU_CHECK_LIBS       a folder of shared libraries to add to LD_LIBRARY_PATH (for a
#                               prebuilt tree whose dependencies this machine lacks)
#   FMNIST_GPU_CHECK_CPU=1      also train on the CPU and compare (slow)
#   FMNIST_GPU_CHECK_PACK_LOGS  1: at the end, fold every log into LOG_DIR/gpu-check-logs.tar.gz,
#                               leaving it and summary.txt (default 1 when LOG_DIR is $OUT, whose
#                               file count is limited)
# shellcheck disable=SC2317  # the step functions are called through run_step
set -u
set -o pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
data_dir="${1:-${FMNIST_DATA_DIR:-$repo/data/fashion-mnist}}"
log_dir="${2:-${OUT:-$repo/gpu-logs}}"
budget="${FMNIST_GPU_CHECK_BUDGET:-470}"
build_dir="${FMNIST_GPU_CHECK_BUILD_DIR:-$repo/build-gpu-check}"
prebuilt="${FMNIST_GPU_CHECK_PREBUILT:-}"
[ -n "$prebuilt" ] && build_dir="$(cd "$prebuilt" && pwd)"
pack_default=0
[ -n "${OUT:-}" ] && [ "$log_dir" = "${OUT:-}" ] && pack_default=1
pack_logs="${FMNIST_GPU_CHECK_PACK_LOGS:-$pack_default}"
mkdir -p "$log_dir" || exit 1
log_dir="$(cd "$log_dir" && pwd)"
jobs="$(nproc 2>/dev/null || echo 4)"
start_time="$(date +%s)"

# Where Python's nvidia-cudnn keeps libcudnn.so.9 (the GPU machine may have cuDNN only there).
py_cudnn=""
for py in python3 python; do
  command -v "$py" >/dev/null 2>&1 || continue
  py_cudnn="$("$py" -c 'import importlib.util as u
s = u.find_spec("nvidia.cudnn")
print(list(s.submodule_search_locations)[0] if s and s.submodule_search_locations else "")' 2>/dev/null)"
  [ -n "$py_cudnn" ] && break
done
extra_libs=""
[ -n "$py_cudnn" ] && [ -d "$py_cudnn/lib" ] && extra_libs="$py_cudnn/lib"
[ -n "${FMNIST_GPU_CHECK_LIBS:-}" ] && extra_libs="$(cd "$FMNIST_GPU_CHECK_LIBS" && pwd)${extra_libs:+:$extra_libs}"
[ -n "$extra_libs" ] && export LD_LIBRARY_PATH="$extra_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

sanitizer="$(command -v compute-sanitizer 2>/dev/null || true)"
[ -z "$sanitizer" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] && sanitizer=/usr/local/cuda/bin/compute-sanitizer
export PATH="$PATH:/usr/local/cuda/bin"

# ---- step bookkeeping ------------------------------------------------------------------------------
step_number=0
names=() statuses=() seconds=() figures=()
failed=0

# record NAME STATUS SECONDS FIGURE
record() {
  names+=("$1") statuses+=("$2") seconds+=("$3") figures+=("$4")
  case "$2" in PASS | SKIP) ;; *) failed=1 ;; esac
  printf '== %-12s %-7s %6ss  %s\n' "$1" "$2" "$3" "$4"
}

# run_step NAME TIMEOUT FIGURE_FUNCTION COMMAND...: runs COMMAND with its output in the step's log,
# under min(TIMEOUT, time left); FIGURE_FUNCTION LOG prints the key figure.
run_step() {
  local name="$1" limit="$2" figure_fn="$3"
  shift 3
  step_number=$((step_number + 1))
  local log
  log="$log_dir/$(printf '%02d' "$step_number")-$name.log"
  local left=$((budget - ($(date +%s) - start_time)))
  if [ "$left" -lt 20 ]; then
    echo "skipped: only ${left}s of the ${budget}s budget left" >"$log"
    record "$name" SKIP 0 "out of time (${left}s left)"
    return 1
  fi
  [ "$limit" -gt $((left - 10)) ] && limit=$((left - 10))
  echo "== $name (timeout ${limit}s): $*"
  local t0 t1 rc
  t0="$(date +%s.%N)"
  {
    echo "\$ $*"
    echo "# $(date -u '+%Y-%m-%dT%H:%M:%SZ'), timeout ${limit}s"
  } >"$log"
  # Through bash -c so that the exported step functions below run under timeout too.
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >>"$log" 2>&1
  rc=$?
  t1="$(date +%s.%N)"
  local took
  took="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
  echo "# exit status $rc" >>"$log"
  local figure
  figure="$("$figure_fn" "$log" 2>/dev/null | head -1)"
  if [ "$rc" -eq 0 ]; then
    record "$name" PASS "$took" "$figure"
  elif [ "$rc" -eq 77 ]; then
    record "$name" NODEV "$took" "no CUDA device visible; $figure"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    record "$name" TIMEOUT "$took" "killed after ${limit}s; $figure"
  else
    record "$name" FAIL "$took" "exit $rc; $figure; see $(basename "$log")"
  fi
  return "$rc"
}

# ---- key figures (each reads one step's log) ------------------------------------------------------
figure_none() { :; }
figure_info() { grep -m1 '^card:' "$1" | sed 's/^card: //'; }
figure_configure() { grep -m1 'fmnist: cuDNN' "$1" | sed 's/^-- //'; }
figure_build() { echo "$(grep -ciE '(^|[^a-z])warning' "$1") compiler warning lines"; }
figure_ctest() { grep -m1 -E 'tests passed|tests failed' "$1"; }
figure_catch() { grep -m1 -E '^All tests passed|^test cases:' "$1"; }
figure_sanitizer() { grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY|HAZARD' "$1"; }
figure_train() {
  local line
  line="$(grep -m1 '^final:' "$1")"
  if [ -n "$line" ]; then echo "$line"; else grep -m1 -iE 'error' "$1"; fi
}

# ---- the steps --------------------------------------------------------------------------------------
info() {
  echo "date: $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
  echo "repo: $repo (commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet 2>/dev/null || echo ', with local changes'))"
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "card: $(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>/dev/null | head -1)"
    nvidia-smi 2>&1
  else
    echo "card: nvidia-smi not found"
  fi
  echo "--- nvcc"
  nvcc --version 2>&1 || echo "nvcc not found"
  echo "--- cuDNN"
  ls /usr/local/cuda/include/cudnn_version.h /usr/include/cudnn_version.h 2>/dev/null || echo "no cuDNN header in the toolkit or /usr/include"
  if [ -n "$py_cudnn" ]; then
    echo "Python's nvidia-cudnn: $py_cudnn"
    grep -E '#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' "$py_cudnn/include/cudnn_version.h" 2>/dev/null
    ls "$py_cudnn/lib" 2>/dev/null
  else
    echo "Python's nvidia-cudnn: not found"
  fi
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  echo "--- compute-sanitizer: ${sanitizer:-not found}"
  [ -n "$sanitizer" ] && "$sanitizer" --version 2>&1 | tail -2
  echo "--- cmake: $(cmake --version 2>&1 | head -1); ninja: $(ninja --version 2>/dev/null || echo none); cores: $jobs"
  echo "--- data: $data_dir"
  ls -la "$data_dir" 2>&1
  [ -d "$data_dir" ]  # no data: this step fails (the training steps would too), the rest runs
}

configure() {
  local generator=()
  if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
    generator=(-G Ninja)
  fi
  # shellcheck disable=SC2086  # FMNIST_CMAKE_ARGS holds several arguments
  cmake -S "$repo" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DFMNIST_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 ${FMNIST_CMAKE_ARGS:-}
}

# The final validation figures of a training log: "val_loss [val_accuracy]".
final_figures() { sed -n 's/^final:.* val loss \([0-9.e+-]*\)\( val accuracy \([0-9.e+-]*\)\)\{0,1\}.*/\1 \3/p' "$1" | head -1; }

compare_runs() {  # compare_runs GPU_LOG CPU_LOG: val loss within 2% relative, accuracy within 0.01
  local g c
  g="$(final_figures "$1")"
  c="$(final_figures "$2")"
  echo "gpu: $g"
  echo "cpu: $c"
  if [ -z "$g" ] || [ -z "$c" ]; then
    echo "missing final figures"
    return 1
  fi
  awk -v g="$g" -v c="$c" 'BEGIN {
    split(g, G, " "); split(c, C, " ");
    rel = (G[1] - C[1]) / C[1]; if (rel < 0) rel = -rel;
    ok = rel <= 0.02;
    line = sprintf("val loss gpu %s cpu %s (rel %.2e, allowed 2e-2)", G[1], C[1], rel);
    if (G[2] != "" && C[2] != "") {
      d = G[2] - C[2]; if (d < 0) d = -d; ok = ok && d <= 0.01;
      line = line sprintf("; val accuracy gpu %s cpu %s (diff %.4f, allowed 0.01)", G[2], C[2], d);
    }
    print "compare: " line; exit ok ? 0 : 1 }'
}
figure_compare() { grep -m1 '^compare:' "$1" | sed 's/^compare: //'; }

train() {  # train MODEL DEVICE OUT: 2 epochs of MODEL(256) on DEVICE, the run written to OUT
  rm -rf "$3"
  FMNIST_CUDA_VERBOSE=1 "$fmnist" train --model "$1" --latent 256 --epochs 2 --device "$2" \
    --data-dir "$data_dir" --out "$3"
}

gpu_tests="$build_dir/tests/gpu/fmnist_gpu_tests"
fmnist="$build_dir/fmnist"
export repo data_dir build_dir jobs sanitizer py_cudnn fmnist
export -f info configure train final_figures compare_runs

echo "gpu_check: data $data_dir, logs $log_dir, build $build_dir, budget ${budget}s"
run_step info 30 figure_info info

if [ -n "$prebuilt" ]; then
  echo "prebuilt tree $build_dir: configure and build skipped" >"$log_dir/prebuilt.txt"
  record configure SKIP 0 "prebuilt: $build_dir"
  record build SKIP 0 "prebuilt"
  build_ok=1
  [ -x "$build_dir/fmnist" ] && [ -x "$build_dir/tests/gpu/fmnist_gpu_tests" ] || build_ok=0
else
  build_ok=0
  if run_step configure 120 figure_configure configure; then
    run_step build 330 figure_build cmake --build "$build_dir" -j"$jobs" && build_ok=1
  else
    record build SKIP 0 "configure failed"
  fi
fi

if [ "$build_ok" -eq 1 ]; then
  if [ -n "$prebuilt" ]; then
    record ctest SKIP 0 "prebuilt tree: its CTest files hold another machine's paths"
  else
    run_step ctest 240 figure_ctest ctest --test-dir "$build_dir" -j"$jobs" --output-on-failure \
      -E '^fmnist_gpu_tests$'
  fi
  # Verbose: every comparison's worst error, and the cuDNN algorithms each geometry got.
  run_step gpu-tests 240 figure_catch env FMNIST_GPU_TEST_VERBOSE=1 FMNIST_CUDA_VERBOSE=1 \
    "$gpu_tests" --durations yes
  if [ -n "$sanitizer" ]; then
    run_step memcheck 150 figure_sanitizer "$sanitizer" --tool memcheck --error-exitcode 1 \
      --print-limit 50 "$gpu_tests" "[sanitize]"
    run_step racecheck 150 figure_sanitizer "$sanitizer" --tool racecheck --error-exitcode 1 \
      --print-limit 50 "$gpu_tests" "[sanitize]"
  else
    record memcheck FAIL 0 "compute-sanitizer not found"
    record racecheck FAIL 0 "compute-sanitizer not found"
  fi
  run_step train-ae256 120 figure_train train ae cuda "$log_dir/ae256"
  ae_gpu_log="$log_dir/$(printf '%02d' "$step_number")-train-ae256.log"
  run_step train-c256 120 figure_train train classifier cuda "$log_dir/c256"
  c_gpu_log="$log_dir/$(printf '%02d' "$step_number")-train-c256.log"
  if [ "${FMNIST_GPU_CHECK_CPU:-0}" = 1 ]; then
    run_step cpu-ae256 600 figure_train train ae cpu "$log_dir/ae256-cpu"
    ae_cpu_log="$log_dir/$(printf '%02d' "$step_number")-cpu-ae256.log"
    run_step compare-ae256 10 figure_compare compare_runs "$ae_gpu_log" "$ae_cpu_log"
    run_step cpu-c256 600 figure_train train classifier cpu "$log_dir/c256-cpu"
    c_cpu_log="$log_dir/$(printf '%02d' "$step_number")-cpu-c256.log"
    run_step compare-c256 10 figure_compare compare_runs "$c_gpu_log" "$c_cpu_log"
  fi
else
  for s in ctest gpu-tests memcheck racecheck train-ae256 train-c256; do record "$s" SKIP 0 "no build"; done
  failed=1
fi

# ---- summary, last ---------------------------------------------------------------------------------
total=$(($(date +%s) - start_time))
{
  echo
  echo "gpu_check summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 '^card:' "$log_dir/01-info.log" 2>/dev/null | sed 's/^card: //'), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown), ${total}s)"
  printf '%-13s %-8s %8s  %s\n' step status seconds "key figure"
  for i in "${!names[@]}"; do
    printf '%-13s %-8s %8s  %s\n' "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}" "${figures[$i]}"
  done
  if [ "$failed" -eq 0 ]; then echo "result: PASS"; else echo "result: FAIL"; fi
  echo "logs: $log_dir"
} >"$log_dir/summary.txt"
if [ "$pack_logs" = 1 ]; then
  # Keep summary.txt and one archive of everything else (LOG_DIR may return few files).
  archive="$(mktemp /tmp/gpu-check-logs.XXXXXX)"
  (cd "$log_dir" && tar -czf "$archive" --exclude=summary.txt . &&
    find . -mindepth 1 -maxdepth 1 ! -name summary.txt -exec rm -rf {} + &&
    mv "$archive" gpu-check-logs.tar.gz) ||
    echo "gpu_check: packing the logs failed; they stay as they are"
fi
cat "$log_dir/summary.txt"
exit "$failed"
