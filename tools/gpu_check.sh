#!/usr/bin/env bash
# The one prepared check for a GPU machine without network (issue 3, item 9).
#
# HOW TO RUN IT (the next session with a device): first, HERE (Debian 12, with apt),
#   tools/gpu_bundle.sh        # fills the git-ignored .gpu/: Fashion-MNIST + the Debian .debs (~44 MiB)
# then ONE device call:
#   run(command="tools/gpu_check.sh", carry=[".gpu"], timeout_s=540)
# Everything comes back in $OUT: summary.txt and gpu-check-logs.tar.gz (every step's full log).
# The machine's 'cuda' image has nvcc 13, CMake, ninja, PyTorch (with pip's nvidia-cudnn-cu13) and
# compute-sanitizer, but not Debian's -dev packages fmnist builds against; .gpu/debs brings those.
# A dry run of all of this without a GPU: tools/gpu_sim_chroot.sh, a Debian 12 chroot holding only
# build-essential, cmake, ninja-build, python3 and /usr/local/cuda (configure, build and the CPU tests
# pass there from the bundle alone; the GPU steps report NODEV/FAIL).
#
# In order:
#   info        OS, glibc, g++, cmake, ninja, nvcc, card and driver, cuDNN (toolkit or Python's
#               nvidia-cudnn), compute-sanitizer, the data
#   deps        unpacks .gpu/debs/*.deb into a private prefix (FMNIST_GPU_CHECK_DEPS, default
#               /tmp/fmnist-deps) with dpkg-deb -x (else ar + tar, else Python), makes it relocatable
#               (merged /usr, absolute links, .pc files), and checks the machine's glibc against the
#               newest one the bundle's libraries need (.gpu/MANIFEST.txt). Fails, and the rest still
#               runs, when that glibc is older. Skipped, using the machine's own packages, without .gpu/debs
#   configure   -DFMNIST_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 (Ninja when present), the bundle
#               first (CMAKE_PREFIX_PATH, PKG_CONFIG_PATH, fmt header-only), -DFMNIST_REPORT=OFF unless
#               the machine has cairo and libpng (the report is no GPU work, and its libraries are not
#               bundled)
#   build       all targets, all cores
#   ctest       every CTest test except the GPU binary (run next, verbosely), on the carried data
#               (FMNIST_DATA_DIR, and /usr/share/datasets/fashion-mnist linked to it where
#               missing); the [torch] cross-checks are left out when /usr/bin/python3
#               cannot import torch, and the browser check when there is no chromium (both said in
#               the key figure)
#   gpu-tests   fmnist_gpu_tests: every GPU op and training step against the CPU reference
#   memcheck    fmnist_gpu_tests "[sanitize]" under compute-sanitizer --tool memcheck
#   racecheck   the same under --tool racecheck
#   train-ae256 fmnist train --model ae --latent 256 --epochs 2 --device cuda on the real data
#   train-c256  the same for --model classifier
#   cpu-*       (only with FMNIST_GPU_CHECK_CPU=1) the same two runs on --device cpu, and a
#               comparison of the final validation figures
# Every step is timed and logged in full to LOGDIR/NN-step.log; a failing step is recorded and the
# next one runs; a summary table (step, status, seconds, key figure) is printed last and written
# to LOGDIR/summary.txt. Exit status: 0 when every step that ran passed, 1 otherwise. Without a
# CUDA device the GPU steps report NODEV or FAIL (as in the chroot dry run).
#
# Usage: tools/gpu_check.sh [DATA_DIR [LOG_DIR]]
#   DATA_DIR  Fashion-MNIST IDX files (.gz or not); default $FMNIST_DATA_DIR, else ./.gpu/data
#   LOG_DIR   default $OUT, else ./gpu-logs
# Environment:
#   FMNIST_GPU_CHECK_BUDGET     seconds for the whole check (default 470): a step that would start
#                               with less than 20 s left is SKIPPED, and each step's timeout is cut
#                               to what is left
#   FMNIST_GPU_CHECK_STEP_SCALE multiplies every step's own timeout (default 1; e.g. 10 for a
#                               dry run on a 2-core machine, with a larger BUDGET)
#   FMNIST_GPU_CHECK_BUILD_DIR  build directory (default build-gpu-check)
#   FMNIST_GPU_CHECK_BUNDLE     the folder tools/gpu_bundle.sh filled (default ./.gpu)
#   FMNIST_GPU_CHECK_DEPS       where its .debs are unpacked (default /tmp/fmnist-deps; no spaces)
#   FMNIST_GPU_CHECK_PREBUILT   a build directory made elsewhere (same CUDA major version): skip
#                               configure and build, and run its binaries (ctest is skipped: a
#                               CTest tree holds the paths of the machine that made it)
#   FMNIST_GPU_CHECK_LIBS       a folder of shared libraries to add to LD_LIBRARY_PATH (for a
#                               prebuilt tree whose dependencies this machine lacks)
#   FMNIST_GPU_CHECK_CPU=1      also train on the CPU and compare (slow)
#   FMNIST_GPU_CHECK_PACK_LOGS  1: at the end, fold every log into LOG_DIR/gpu-check-logs.tar.gz,
#                               leaving it and summary.txt (default 1 when LOG_DIR is $OUT, whose
#                               file count is limited)
#   FMNIST_CMAKE_ARGS           more configure arguments (after the script's own)
# shellcheck disable=SC2317  # the step functions are called through run_step
set -u
set -o pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
data_dir="${1:-${FMNIST_DATA_DIR:-$repo/.gpu/data}}"
log_dir="${2:-${OUT:-$repo/gpu-logs}}"
budget="${FMNIST_GPU_CHECK_BUDGET:-470}"
build_dir="${FMNIST_GPU_CHECK_BUILD_DIR:-$repo/build-gpu-check}"
prebuilt="${FMNIST_GPU_CHECK_PREBUILT:-}"
bundle="${FMNIST_GPU_CHECK_BUNDLE:-$repo/.gpu}"
deps="${FMNIST_GPU_CHECK_DEPS:-/tmp/fmnist-deps}"
[ -n "$prebuilt" ] && build_dir="$(cd "$prebuilt" && pwd)"
[ -d "$bundle" ] && bundle="$(cd "$bundle" && pwd)"
step_scale="${FMNIST_GPU_CHECK_STEP_SCALE:-1}"
pack_default=0
[ -n "${OUT:-}" ] && [ "$log_dir" = "${OUT:-}" ] && pack_default=1
pack_logs="${FMNIST_GPU_CHECK_PACK_LOGS:-$pack_default}"
mkdir -p "$log_dir" || exit 1
log_dir="$(cd "$log_dir" && pwd)"
[ -d "$data_dir" ] && data_dir="$(cd "$data_dir" && pwd)"
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
  limit=$((limit * step_scale))
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
figure_ctest() {
  local result left_out
  result="$(grep -m1 -E 'tests passed|tests failed' "$1")"
  left_out="$(grep -m1 '^left out:' "$1")"
  echo "${result}${left_out:+; $left_out}"
}
figure_deps() { grep -m1 -E '^deps:' "$1" | sed 's/^deps: //'; }
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
  # shellcheck disable=SC1091
  echo "os: $( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null || echo unknown); kernel $(uname -r); $(uname -m)"
  echo "glibc: $(ldd --version 2>&1 | head -1)"
  echo "g++: $(g++ --version 2>&1 | head -1)"
  echo "dpkg-deb: $(command -v dpkg-deb || echo none); pkg-config: $(command -v pkg-config || command -v pkgconf || echo none)"
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

# ---- the bundle (.gpu/debs): unpacked into $deps, made relocatable; settings in $deps/env.sh -----
# unpack_deb DEB DIR: dpkg-deb -x, else ar + tar, else Python (ar and tarfile).
unpack_deb() {
  if command -v dpkg-deb >/dev/null 2>&1; then
    dpkg-deb -x "$1" "$2"
  elif command -v ar >/dev/null 2>&1 && command -v tar >/dev/null 2>&1; then
    local t
    t="$(mktemp -d)"
    (cd "$t" && ar x "$1" && tar -xf data.tar.* -C "$2") || { rm -rf "$t"; return 1; }
    rm -rf "$t"
  else
    python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n", "not an ar archive"
pos = 8
while pos + 60 <= len(data):
    name, size = data[pos:pos + 16].decode().strip(), int(data[pos + 48:pos + 58].decode().strip())
    if name.rstrip("/").startswith("data.tar"):
        with tarfile.open(fileobj=io.BytesIO(data[pos + 60:pos + 60 + size])) as t:
            # Debian's members are trusted, absolute links included (3.14's default filter refuses them).
            kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
            t.extractall(sys.argv[2], **kw)
        break
    pos += 60 + size + (size & 1)
else:
    sys.exit("no data.tar member")
PY
  fi
}

unpack_deps() {
  local debs=("$bundle"/debs/*.deb)
  case "$deps" in / | /usr | /usr/* | *' '*) echo "deps: refusing to unpack into '$deps'"; return 1 ;; esac
  rm -rf "${deps:?}"
  mkdir -p "$deps" || return 1
  echo "bundle: $bundle; prefix: $deps"
  [ -f "$bundle/MANIFEST.txt" ] && cat "$bundle/MANIFEST.txt"
  local deb
  for deb in "${debs[@]}"; do
    unpack_deb "$deb" "$deps" || { echo "deps: could not unpack $(basename "$deb")"; return 1; }
  done
  # Merged /usr (Debian 12's zlib1g ships /lib/...), then absolute links (libz.so -> /lib/...) into the prefix.
  if [ -d "$deps/lib" ] && [ ! -L "$deps/lib" ]; then
    mkdir -p "$deps/usr/lib" && cp -a "$deps/lib/." "$deps/usr/lib/" && rm -rf "${deps:?}/lib" &&
      ln -s usr/lib "$deps/lib"
  fi
  local link target
  while IFS= read -r -d '' link; do
    target="$(readlink "$link")"
    case "$target" in /*) ln -sfn "$deps$target" "$link" ;; esac
  done < <(find "$deps" -type l -print0)
  # .pc files name /usr: point them at the prefix.
  local pc_dirs
  pc_dirs="$(find "$deps" -name '*.pc' -printf '%h\n' | sort -u | tr '\n' ':' | sed 's/:$//')"
  find "$deps" -name '*.pc' -exec sed -i -E "s#(^|[=[:space:]])/usr(/|\$|[[:space:]])#\1$deps/usr\2#g" {} +
  local arch_lib="$deps/usr/lib/x86_64-linux-gnu"
  local run_libs="$arch_lib"
  [ -d "$arch_lib/openblas-pthread" ] && run_libs="$arch_lib/openblas-pthread:$run_libs"

  # pkg-config: the machine's own, else the bundle's pkgconf (through a wrapper that finds its library).
  local pkg_config
  pkg_config="$(command -v pkg-config || command -v pkgconf || true)"
  if [ -z "$pkg_config" ] && [ -x "$deps/usr/bin/pkgconf" ]; then
    mkdir -p "$deps/bin"
    # shellcheck disable=SC2016  # the wrapper expands $LD_LIBRARY_PATH and $@ itself
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
      "$arch_lib" "$deps/usr/bin/pkgconf" >"$deps/bin/pkg-config"
    chmod +x "$deps/bin/pkg-config"
    pkg_config="$deps/bin/pkg-config"
  fi
  # The report needs cairo and libpng, which the bundle leaves out: built only when the machine has both.
  local report=OFF
  [ -n "$pkg_config" ] && "$pkg_config" --exists cairo libpng 2>/dev/null && report=AUTO

  local args="-DCMAKE_PREFIX_PATH=$deps/usr -DCMAKE_LIBRARY_PATH=$arch_lib -DFMNIST_FMT_HEADER_ONLY=ON"
  # The programs find the bundle's libraries through their own RPATH (DT_RPATH, which also serves
  # libopenblas's libgfortran, unlike DT_RUNPATH): the build itself runs fmnist_tests (Catch2's test
  # discovery), and the steps after it run them under ctest and compute-sanitizer.
  args+=" -DFMNIST_REPORT=$report"
  args+=" -DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$arch_lib,--disable-new-dtags,-rpath,$run_libs"
  [ -d "$arch_lib/cmake/fmt" ] && args+=" -Dfmt_DIR=$arch_lib/cmake/fmt"
  [ -n "$pkg_config" ] && args+=" -DPKG_CONFIG_EXECUTABLE=$pkg_config"
  {
    echo "export PKG_CONFIG_PATH=\"$pc_dirs\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}\""
    echo "FMNIST_DEPS_CMAKE_ARGS=\"$args\""
    echo "FMNIST_DEPS_RUN_LIBS=\"$run_libs\""
  } >"$deps/env.sh"
  echo "--- $deps/env.sh"
  cat "$deps/env.sh"
  [ -n "$pkg_config" ] && PKG_CONFIG_PATH="$pc_dirs" "$pkg_config" --modversion openblas zlib fmt 2>&1 | tr '\n' ' ' &&
    echo "(openblas, zlib, fmt through $pkg_config)"

  # glibc: the bundle's libraries were built for Debian 12 and need a glibc at least as new as they ask for.
  local needed have
  needed="$(sed -n 's/^glibc needed: GLIBC_\([0-9.]*\).*/\1/p' "$bundle/MANIFEST.txt" 2>/dev/null)"
  have="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }')"
  [ -n "$have" ] || have="$(ldd --version 2>&1 | head -1 | grep -oE '[0-9]+\.[0-9]+$')"
  local summary="${#debs[@]} debs unpacked; glibc ${have:-unknown} (bundle needs ${needed:-?}); pkg-config ${pkg_config:-none}; report $report"
  if [ -n "$needed" ] && [ -n "$have" ] &&
    [ "$(printf '%s\n%s\n' "$needed" "$have" | sort -V | head -1)" != "$needed" ]; then
    echo "deps: glibc $have is older than the $needed the bundle's Debian 12 libraries need: linking or running fmnist will fail ($summary)"
    return 1
  fi
  echo "deps: $summary"
}

configure() {
  local generator=()
  if [ ! -f "$build_dir/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then
    generator=(-G Ninja)
  fi
  # shellcheck disable=SC2086  # FMNIST_DEPS_CMAKE_ARGS and FMNIST_CMAKE_ARGS hold several arguments
  cmake -S "$repo" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DFMNIST_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 ${FMNIST_DEPS_CMAKE_ARGS:-} ${FMNIST_CMAKE_ARGS:-}
}

# CTest on the CPU, with what this machine cannot run left out (and said on a "left out:" line).
cpu_ctest() {
  local exclude='^fmnist_gpu_tests$' left_out=()
  # Catch2's discovery runs fmnist_tests at build time; if that failed, CTest would pass on no tests.
  local cases registered
  cases="$("$build_dir/tests/fmnist_tests" --list-test-names-only 2>/dev/null | grep -c .)"
  registered="$(ctest --test-dir "$build_dir" -N 2>/dev/null | grep -c 'Test *#')"
  echo "fmnist_tests has $cases test cases; CTest has $registered tests"
  if [ "$cases" -eq 0 ] || [ "$registered" -lt "$cases" ]; then
    echo "ctest: fmnist_tests' cases are not all registered with CTest (does it run here? did its discovery fail in the build?)"
    "$build_dir/tests/fmnist_tests" --list-test-names-only 2>&1 | head -3
    return 1
  fi
  if ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
    local names
    names="$("$build_dir/tests/fmnist_tests" --list-test-names-only '[torch]' 2>/dev/null |
      sed -e '/^$/d' -e '/matching test case/d' -e 's/[][\\.*^$+?(){}|]/\\&/g')"
    if [ -n "$names" ]; then
      exclude+="|^($(echo "$names" | paste -sd'|'))\$"
      left_out+=("$(echo "$names" | wc -l) [torch] tests (/usr/bin/python3 has no torch)")
    fi
  fi
  if ! command -v chromium >/dev/null 2>&1 &&
    ctest --test-dir "$build_dir" -N 2>/dev/null | grep -q reproduce_report_in_browser; then
    exclude+='|^reproduce_report_in_browser$'
    left_out+=("reproduce_report_in_browser (no chromium)")
  fi
  if [ ${#left_out[@]} -gt 0 ]; then
    local joined
    joined="$(IFS=,; echo "${left_out[*]}")"
    echo "left out: ${joined//,/, }"
  fi
  ctest --test-dir "$build_dir" -j"$jobs" --output-on-failure -E "$exclude"
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
figure_bench() { grep -m1 -E '^AE\(256\) +100 ' "$1" | awk '{ print "AE(256) b100: " $3 " img/s" }'; }
figure_torch() { grep -m1 -E '^AE\(256\) +100 +eager' "$1" | awk '{ print "eager AE(256) b100: " $4 " img/s" }'; }
# The side-by-side table of fmnist and PyTorch on this card (tools/bench_compare.py).
bench_ratio() {
  python3 "$repo/tools/bench_compare.py" "$log_dir/bench-fmnist.json" "$log_dir"/bench-torch-*.json \
    >"$log_dir/ratio.txt" && cat "$log_dir/ratio.txt"
}
figure_compare() { grep -m1 '^compare:' "$1" | sed 's/^compare: //'; }

train() {  # train MODEL DEVICE OUT: 2 epochs of MODEL(256) on DEVICE, the run written to OUT
  rm -rf "$3"
  FMNIST_CUDA_VERBOSE=1 "$fmnist" train --model "$1" --latent 256 --epochs 2 --device "$2" \
    --data-dir "$data_dir" --out "$3"
}

gpu_tests="$build_dir/tests/gpu/fmnist_gpu_tests"
fmnist="$build_dir/fmnist"
export repo data_dir build_dir jobs sanitizer py_cudnn fmnist bundle deps log_dir
export -f info unpack_deb unpack_deps configure cpu_ctest train final_figures compare_runs bench_ratio

echo "gpu_check: data $data_dir, logs $log_dir, build $build_dir, budget ${budget}s"
run_step info 30 figure_info info

# The bundle: unpacked in a step (timed, logged), its settings read back into this shell.
FMNIST_DEPS_CMAKE_ARGS="" FMNIST_DEPS_RUN_LIBS=""
if [ -n "$prebuilt" ] && [ -z "$(ls "$bundle"/debs/*.deb 2>/dev/null)" ]; then
  record deps SKIP 0 "prebuilt tree, no bundle"
elif [ -z "$(ls "$bundle"/debs/*.deb 2>/dev/null)" ]; then
  record deps SKIP 0 "no $bundle/debs: the machine's own packages (run tools/gpu_bundle.sh first)"
else
  run_step deps 90 figure_deps unpack_deps
  # shellcheck disable=SC1091
  [ -f "$deps/env.sh" ] && . "$deps/env.sh"
fi
export FMNIST_DEPS_CMAKE_ARGS FMNIST_DATA_DIR="$data_dir"

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

# From here on fmnist's programs run: the bundle's libraries (OpenBLAS, libgfortran) must be found.
[ -n "$FMNIST_DEPS_RUN_LIBS" ] && export LD_LIBRARY_PATH="$FMNIST_DEPS_RUN_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Some tests read the built-in default folder (FMNIST_DEFAULT_DATA_DIR, where Debian's
# dataset-fashion-mnist installs it) rather than FMNIST_DATA_DIR: where this machine has none, it
# becomes a link to the carried data.
default_data=/usr/share/datasets/fashion-mnist
if [ ! -e "$default_data" ] && [ -d "$data_dir" ] && mkdir -p "${default_data%/*}" 2>/dev/null &&
  ln -s "$data_dir" "$default_data" 2>/dev/null; then
  echo "gpu_check: linked $default_data -> $data_dir (the tests' default data folder)"
fi

if [ "$build_ok" -eq 1 ]; then
  if [ -n "$prebuilt" ]; then
    record ctest SKIP 0 "prebuilt tree: its CTest files hold another machine's paths"
  else
    run_step ctest 240 figure_ctest cpu_ctest
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
  run_step bench 120 figure_bench "$fmnist" bench --device cuda --measure step --json "$log_dir/bench-fmnist.json"
  if python3 -c 'import torch' >/dev/null 2>&1; then
    run_step torch-eager 180 figure_torch python3 "$repo/tools/torch_baseline.py" --device cuda --modes eager \
      --json "$log_dir/bench-torch-eager.json"
    run_step ratio 20 figure_none bench_ratio
  else
    record torch-bench SKIP 0 "python3 has no torch"
  fi
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
  if [ -s "$log_dir/ratio.txt" ]; then echo; echo "fmnist vs PyTorch on this card"; cat "$log_dir/ratio.txt"; fi
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
