#!/usr/bin/env bash
# The one prepared check for a GPU machine without network (issue 3, item 9).
#
# HOW TO RUN IT (the next session with a device): first, HERE (Debian 12, with apt),
#   tools/gpu_bundle.sh        # fills the git-ignored .gpu/: Fashion-MNIST + the Debian .debs (~44 MiB)
# then the device calls (15 minutes of device time in all, machine start included; at most 10 a call;
# the machine goes back after 30 s idle, and with it the build):
#   call 1, the checks, then the side-by-side benchmark (about 5 minutes):
#     run(command="FMNIST_GPU_CHECK_BUDGET=345 FMNIST_GPU_CHECK_STEPS=checks,bench,bench-cudnn,bench-dgrad,bench-fwd,bench-linear,bench-linear-dgrad,bench-linear-wgrad,bench-streams,bench-pdl,bench-direct,bench-fast,bench-combo,torch-eager,ratio,layers tools/gpu_check.sh",
#         carry=[".gpu"], timeout_s=360)
#   call 2, AT ONCE (within 30 s of call 1's reply, on the still-warm machine): the long
#   measurements, reusing call 1's build (build-gpu-check/) and unpacked bundle (/tmp/fmnist-deps):
#     run(command="FMNIST_GPU_CHECK_BUDGET=B FMNIST_GPU_CHECK_STEPS=ae256-100,torch-compile,ncu,ncu-direct,timeline,tf32-100,reproduce,reproduce-improved tools/gpu_check.sh",
#         carry=[".gpu"], timeout_s=T)
#   with T = min(600, lease.budget_left_s of call 1's reply - 20) and B = T - 15. Then give_back.
#   Leave `kind` out of call 1 (it starts an H100 when one opens, else an H200) and out of call 2
#   (the same machine). Issue 4's targets are an H100's: the summary names the card; say which
#   card gave each figure, and compare only figures of one card (PyTorch runs beside fmnist).
#   Call 1 also picks the path call 2 measures (step fast-path, FMNIST_GPU_CHECK_PATH below): the
#   fastest of the bench variants (defaults, eight single options, bench-direct, all eight, bench-combo) when the GPU tests passed, kept in build-gpu-check/.
#   Costs measured on an H100 on 2026-11-28 (3fa85cf; bench/h100-2026-11-28/): machine start and
#   transfer about 30 s; configure 5 s, build 57 s; gpu-tests 11 s and gpu-tests-fast 5 s;
#   train-ae256 and train-c256 2 s each; kill-resume 9 s; memcheck + initcheck + racecheck side by
#   side 95 s; ctest 50 s; each bench 1-2 s; torch-eager 14 s; ae256-100 22 s; reproduce 99 s;
#   reproduce-improved 15 s; tf32-100 40 s; torch-compile 146 s for its three modes (reduce-overhead
#   and default about 45 s each, max-autotune cut at
#   FMNIST_GPU_CHECK_COMPILE_LIMIT, 90 s); ncu 23 s. Call 1 took 272 s, call 2 351 s. "checks" = deps,configure,build,
#   gpu-tests,train-ae256,train-c256,kill-resume,memcheck,initcheck,racecheck,ctest; "measure" =
#   bench,bench-cudnn,bench-dgrad,bench-fwd,bench-linear,bench-linear-dgrad,bench-linear-wgrad,bench-streams,bench-pdl,bench-direct,bench-fast,bench-combo,torch-eager,ratio,layers,ae256-100,torch-compile,ncu,ncu-direct,timeline,tf32-100,reproduce,reproduce-improved
#   (issue 5's reproduction, closed and already measured on an H100, last: the budget cuts it first). A step the
#   budget cannot fit is SKIPPED, not started; FMNIST_GPU_CHECK_COMPILE_MODES=compile-reduce-overhead
#   keeps torch-compile to one mode. Had the machine gone back, call 2 configures and builds again
#   first (about 70 s), and its budget then cuts the measurements.
# Everything comes back in $OUT: summary.txt and gpu-check-logs.tar.gz (every step's full log, the
# reproduction's reproduce.json, results.json, figures.json and report.html; no weights,
# *.safetensors stay behind). The machine has no cairo, so the reports come back without figures;
# draw them afterwards HERE (the dev machine, which has cairo and chromium), from the unpacked logs:
#   mkdir -p gpu-logs && tar -xzf <files_at>/gpu-check-logs.tar.gz -C gpu-logs
#   build/fmnist report gpu-logs/reproduce            # figures/*.png and report.html, as reproduce draws them
#   tools/browser_check.sh gpu-logs/reproduce/report.html --min-figures 10 --screenshot gpu-logs/reproduce/report.png
# (the same for gpu-logs/reproduce-improved, with --min-figures 4).
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
#               the machine has cairo and libpng (it governs only the drawing of the figures, no GPU
#               work, whose libraries are not bundled; fmnist reproduce is built either way)
#   build       all targets, all cores
#   gpu-tests   fmnist_gpu_tests: every GPU op and training step against the CPU reference, graphs,
#               streaming, out-of-memory handling; in two runs: the default path's test cases
#               (gpu-tests), then the opt-in fast path's (gpu-tests-fast: tags [wgrad], [dgrad],
#               [linear-split], [streams], [pdl])
#   train-ae256 fmnist train --model ae --latent 256 --epochs 2 --device cuda on the real data
#   train-c256  the same for --model classifier
#   kill-resume tests/test_kill_resume.cpp's runs on the GPU (FMNIST_KILL_RESUME_DEVICE=cuda):
#               SIGKILL at random moments, SIGTERM and SIGINT, each resumed with --resume, the
#               files compared byte for byte with an uninterrupted GPU run
#   memcheck    fmnist_gpu_tests "[sanitize]" under compute-sanitizer --tool memcheck,
#   initcheck   --tool initcheck and
#   racecheck   --tool racecheck, the three side by side (FMNIST_GPU_CHECK_SANITIZE_PARALLEL=0:
#               one after another)
#   bench       fmnist bench --measure step (the defaults: fmnist's direct backward-filter,
#               cuda/weight_grad.h, and cuDNN's other passes); bench-cudnn the same with
#               FMNIST_CONV_WGRAD=cudnn (cuDNN for every pass: the defaults until 2026-11-28, kept
#               to show what the direct backward-filter gains); bench-dgrad with FMNIST_CONV_DGRAD=fmnist
#               and bench-fwd with FMNIST_CONV_FWD=fmnist (its direct backward-data and forward,
#               cuda/direct_conv.h); bench-linear with FMNIST_LINEAR_FWD=fmnist, bench-linear-dgrad
#               with FMNIST_LINEAR_DGRAD=fmnist and bench-linear-wgrad with FMNIST_LINEAR_WGRAD=fmnist
#               (the split-K Linear forward, input and weight gradients, cuda/linear_split.h); bench-streams with FMNIST_BACKWARD_STREAMS=4 (parameter
#               gradients on three side streams, CudaOptions::backward_streams); bench-pdl with
#               FMNIST_PDL=1 (programmatic dependent launch, cuda/launch.cuh); bench-direct with
#               FMNIST_CONV_DGRAD and _FWD=fmnist (every convolution pass on fmnist's kernels, their
#               pooling fusions included); bench-fast with all eight; bench-combo with only those
#               options that alone beat the defaults by 1 % (when
#               at least two, and not all eight); then torch-eager (tools/torch_baseline.py) and ratio (tools/bench_compare.py:
#               fmnist against PyTorch on this card; LOGDIR/ratio.txt, and ratio-VARIANT.txt for each
#               variant that ran); fast-path (FMNIST_GPU_CHECK_PATH, below) picks the variant the
#               measurements after it use
#   layers      fmnist bench --measure layers for AE(256) and C(256): each NVTX range (phase, layer)
#               of a training step timed by CUDA events inside the replayed graph, on the defaults
#               and with FMNIST_CONV_DGRAD and _FWD=fmnist (LOGDIR/layers.json, layers-direct.json),
#               then the two side by side, range by range (tools/layers_compare.py).
#               Key figure: AE(256)'s step with its ranges timed (the events add graph nodes)
#   ae256-100   fmnist train --model ae --latent 256 --epochs 100 --device cuda on the real data, data
#               resident, CUDA graphs (the default), no epoch-NNNN checkpoints; the wall time measured
#               here. Key figure: wall s and final val MAE against issue targets (<= 10 s, <= 0.0547)
#   torch-compile  tools/torch_baseline.py's torch.compile modes (FMNIST_GPU_CHECK_COMPILE_MODELS,
#               default ae256; FMNIST_GPU_CHECK_COMPILE_MODES, default compile-reduce-overhead,
#               compile-default,compile-max-autotune), one process and JSON per model and mode, each
#               under FMNIST_GPU_CHECK_COMPILE_LIMIT (default 90 s) and what is left of the step (a
#               mode cut short is said, not failed; compile time excluded from img/s, reported); then
#               the ratio table again with them (and eager for those models if torch-eager did not run)
#   ncu         tools/profile.sh's Nsight Compute pass only (ncu --clock-control none) over one
#               AE(256) training step, at most FMNIST_GPU_CHECK_NCU_KERNELS (default 60) kernels, into
#               LOGDIR/profile (kernels.txt, kernels-raw.csv, kernels.ncu-rep). Key figure: the
#               heaviest kernel's GFLOP/s, DRAM GB/s, and SM% / mem% of the card's peak
#   ncu-direct  the same pass with every convolution pass on fmnist's direct kernels
#               (FMNIST_CONV_FWD, _DGRAD and _WGRAD=fmnist) and FMNIST_LINEAR_FWD, _DGRAD, _WGRAD=fmnist, into
#               LOGDIR/profile-direct: its
#               per-launch table (kernels-raw.csv) beside ncu's says, layer by layer, whether cuDNN's
#               or fmnist's kernel is faster (the data a per-layer choice of kernels needs)
#   timeline    tools/profile.sh's Nsight Systems pass only: a warm-up and a timed epoch of AE(256)
#               (validation included) into LOGDIR/timeline, cut into steps by tools/step_timeline.py
#               (steps.txt: span, busy and idle time of a training and an evaluation step, each
#               stream's share, the median training step kernel by kernel). Key figure: the
#               training step's span, busy and idle time. SKIP without nsys
#   tf32-100    AE(256) and C(256), 100 epochs each, --precision tf32 (cuDNN's and cuBLAS's TF32
#               math; the direct kernels left out), C(256) evaluated on t10k: TF32's accuracy over
#               full runs (issue 4, item 6), against FP32's (ae256-100, the H100 reproduction)
#   reproduce   fmnist reproduce --device cuda (faithful: the 9 runs, 100 epochs) into
#               LOGDIR/reproduce (reproduce.json, results.json, figures.json, report.html; its weights
#               deleted); where the machine has cairo the figures too, and with chromium
#               tools/browser_check.sh's screenshot. Without cairo the figures are drawn afterwards on
#               the dev machine with `fmnist report DIR` (above). Key figure: wall, AE(256) val MAE,
#               C(256) t10k accuracy, the targets (<= 60 s on an H100, <= 0.0547, >= 0.905)
#   reproduce-improved  fmnist reproduce --recipe improved (C(256) improved alone, apart from the
#               faithful wall time) into LOGDIR/reproduce-improved; target t10k >= 0.93
#   cpu-*       (only with FMNIST_GPU_CHECK_CPU=1) the two training runs on --device cpu, and a
#               comparison of the final validation figures
#   ctest       last: every CTest test except the GPU binary, on the carried data (FMNIST_DATA_DIR,
#               and /usr/share/datasets/fashion-mnist linked to it where missing); the [torch]
#               cross-checks are left out when /usr/bin/python3 cannot import torch, and the
#               browser check when there is no chromium (both said in the key figure)
# What must work comes first; measurements, then the CPU suite (run where fmnist is developed),
# come last, so that the budget cuts those (SKIP) rather than a GPU check. A step that needs more
# than is left (ae256-100 40 s, reproduce 90 s, reproduce-improved 60 s, torch-compile 60 s, ncu
# 45 s; else 20 s) is SKIPPED, not started and killed.
# Every step is timed and logged in full to LOGDIR/NN-step.log; a failing step is recorded and the
# next one runs; a summary table (step, status, seconds, key figure) is printed last and written
# to LOGDIR/summary.txt. Exit status: 0 when every step that ran passed, 1 otherwise. Without a
# CUDA device the GPU steps report NODEV or FAIL (as in the chroot dry run).
#
# Usage: tools/gpu_check.sh [DATA_DIR [LOG_DIR]]
#   DATA_DIR  Fashion-MNIST IDX files (.gz or not); default $FMNIST_DATA_DIR, else ./.gpu/data
#   LOG_DIR   default $OUT, else ./gpu-logs
# Environment:
#   FMNIST_GPU_CHECK_STEPS      comma list of the steps to run, in the order above whatever the
#                               list's order (default: all). Aliases: all, sanitizers (memcheck,
#                               initcheck,racecheck), checks (deps ... ctest, above), measure (bench,bench-cudnn,bench-dgrad,bench-fwd,bench-linear,bench-linear-dgrad,bench-linear-wgrad,bench-streams,bench-pdl,bench-direct,bench-fast,bench-combo,torch-eager,ratio,layers,ae256-100,
#                               torch-compile,ncu,ncu-direct,timeline,tf32-100,reproduce,reproduce-improved), cpu (the cpu-*
#                               steps; also needs FMNIST_GPU_CHECK_CPU=1). An unknown name stops the
#                               script at once (exit 2). info always runs. deps, configure and build
#                               left out: the build directory's binaries are used as they are, and
#                               the bundle's prefix ($FMNIST_GPU_CHECK_DEPS/env.sh) as it is; either
#                               missing, deps (and configure and build) run all the same
#   FMNIST_GPU_CHECK_PATH       auto (default): after the bench steps, the fast-path step writes
#                               BUILD_DIR/fast-path.env, the environment of the fastest bench
#                               variant (FMNIST_CONV_WGRAD, _DGRAD or _FWD=fmnist,
#                               FMNIST_BACKWARD_STREAMS=4, FMNIST_PDL=1, bench-direct's, all eight,
#                               or bench-combo's)
#                               when it beats the defaults by 3 % and gpu-tests passed in the same
#                               run, else nothing; ae256-100, reproduce, reproduce-improved, ncu and
#                               tf32-100 then run with it, in this call or a later one on the same
#                               build, and the summary says so. default: the defaults, always
#   FMNIST_GPU_CHECK_BUDGET     seconds for the whole check (default 470): a step that would start
#                               with less than 20 s left (more for the long measurements) is
#                               SKIPPED, and each step's timeout is cut to what is left
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
#   FMNIST_GPU_CHECK_SANITIZE_PARALLEL  1 (default): memcheck, initcheck and racecheck side by
#                               side; 0: one after another (each then needs its own share of time)
#   FMNIST_GPU_CHECK_PACK_LOGS  1: at the end, fold every log into LOG_DIR/gpu-check-logs.tar.gz,
#                               leaving it and summary.txt (default 1 when LOG_DIR is $OUT, whose
#                               file count is limited)
#   FMNIST_CMAKE_ARGS           more configure arguments (after the script's own)
#   FMNIST_GPU_CHECK_NCU_KERNELS  kernels the ncu step profiles (default 60)
#   FMNIST_GPU_CHECK_MEASURE_DEVICE, _MEASURE_EPOCHS, _MEASURE_MAX_STEPS  dry runs of ae256-100 and
#                               reproduce* without a GPU (defaults cuda, 100, 0: the real thing)
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

# Which steps run (FMNIST_GPU_CHECK_STEPS): names and aliases expanded into ",a,b,...," (or "all").
known_steps="info deps configure build gpu-tests train-ae256 train-c256 kill-resume memcheck initcheck"
# The bench variants, one a line: the step, then the environment it runs fmnist bench with (the
# opt-in fast path's options). Step bench-X writes LOGDIR/bench-fmnist-X.json.
bench_variants=(
  "bench-cudnn FMNIST_CONV_WGRAD=cudnn"
  "bench-dgrad FMNIST_CONV_DGRAD=fmnist"
  "bench-fwd FMNIST_CONV_FWD=fmnist"
  "bench-linear FMNIST_LINEAR_FWD=fmnist"
  "bench-linear-dgrad FMNIST_LINEAR_DGRAD=fmnist"
  "bench-linear-wgrad FMNIST_LINEAR_WGRAD=fmnist"
  "bench-streams FMNIST_BACKWARD_STREAMS=4"
  "bench-pdl FMNIST_PDL=1"
  "bench-direct FMNIST_CONV_DGRAD=fmnist FMNIST_CONV_FWD=fmnist"
  "bench-fast FMNIST_CONV_WGRAD=fmnist FMNIST_CONV_DGRAD=fmnist FMNIST_CONV_FWD=fmnist FMNIST_LINEAR_FWD=fmnist FMNIST_LINEAR_DGRAD=fmnist FMNIST_LINEAR_WGRAD=fmnist FMNIST_BACKWARD_STREAMS=4 FMNIST_PDL=1"
)
variant_steps="$(for v in "${bench_variants[@]}"; do printf '%s,' "${v%% *}"; done)bench-combo,"
known_steps+=" racecheck bench ${variant_steps//,/ }torch-eager ratio layers ae256-100 torch-compile ncu ncu-direct timeline tf32-100 reproduce reproduce-improved"
known_steps+=" cpu ctest"
measure_steps="bench,${variant_steps}torch-eager,ratio,layers,ae256-100,torch-compile,ncu,ncu-direct,timeline,tf32-100,reproduce,reproduce-improved"
check_steps="deps,configure,build,gpu-tests,train-ae256,train-c256,kill-resume,memcheck,initcheck,racecheck,ctest"
steps_sel=","
IFS=', ' read -r -a steps_list <<<"${FMNIST_GPU_CHECK_STEPS:-all}"
for s in "${steps_list[@]}"; do
  case "$s" in
    all) steps_sel=all; break ;;
    sanitizers) steps_sel+="memcheck,initcheck,racecheck," ;;
    checks) steps_sel+="$check_steps," ;;
    measure) steps_sel+="$measure_steps," ;;
    *)
      if [[ " $known_steps " == *" $s "* ]]; then
        steps_sel+="$s,"
      else
        echo "gpu_check: FMNIST_GPU_CHECK_STEPS: no step '$s' (steps: $known_steps; aliases: all, checks, sanitizers, measure)" >&2
        exit 2
      fi
      ;;
  esac
done
[ "$steps_sel" = "," ] && steps_sel=all
# want STEP: whether STEP was selected.
want() { [ "$steps_sel" = all ] || [[ "$steps_sel" == *",$1,"* ]]; }
# The measurements' settings (other than cuda/100/0 only for dry runs without a GPU).
measure_device="${FMNIST_GPU_CHECK_MEASURE_DEVICE:-cuda}"
measure_epochs="${FMNIST_GPU_CHECK_MEASURE_EPOCHS:-100}"
measure_max_steps="${FMNIST_GPU_CHECK_MEASURE_MAX_STEPS:-0}"
compile_models="${FMNIST_GPU_CHECK_COMPILE_MODELS:-ae256}"
compile_modes="${FMNIST_GPU_CHECK_COMPILE_MODES:-compile-reduce-overhead,compile-default,compile-max-autotune}"
compile_limit="${FMNIST_GPU_CHECK_COMPILE_LIMIT:-90}"
ncu_kernels="${FMNIST_GPU_CHECK_NCU_KERNELS:-60}"

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
  printf '== %-18s %-7s %6ss  %s\n' "$1" "$2" "$3" "$4"
}

# A step runs COMMAND with its output in the step's log (LOGDIR/NN-NAME.log), under min(TIMEOUT,
# time left), through bash -c so that the exported step functions below run under timeout too.
# step_start NAME TIMEOUT COMMAND...: starts it in the background (step_pid[NAME] etc.); returns 1,
# recording SKIP, when less than step_need seconds (default 20; e.g. `step_need=90 run_step ...`
# for a step that is of no use cut short) of the budget are left. The step sees its own end as
# STEP_DEADLINE (epoch seconds), to give what it runs inside a share of its time.
declare -A step_pid step_log step_t0 step_limit
step_start() {
  local name="$1" limit="$2" need="${step_need:-20}"
  shift 2
  step_number=$((step_number + 1))
  local log
  log="$log_dir/$(printf '%02d' "$step_number")-$name.log"
  limit=$((limit * step_scale))
  local left=$((budget - ($(date +%s) - start_time)))
  if [ "$left" -lt "$need" ]; then
    echo "skipped: only ${left}s of the ${budget}s budget left (the step needs ${need}s)" >"$log"
    record "$name" SKIP 0 "out of time (${left}s left, needs ${need}s)"
    return 1
  fi
  [ "$limit" -gt $((left - 10)) ] && limit=$((left - 10))
  echo "== $name (timeout ${limit}s): $*"
  {
    echo "\$ $*"
    echo "# $(date -u '+%Y-%m-%dT%H:%M:%SZ'), timeout ${limit}s"
  } >"$log"
  step_log[$name]="$log" step_limit[$name]="$limit" step_t0[$name]="$(date +%s.%N)"
  STEP_DEADLINE=$(($(date +%s) + limit)) timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >>"$log" 2>&1 &
  step_pid[$name]=$!
}

# step_finish NAME FIGURE_FUNCTION: waits for step NAME and records it (FIGURE_FUNCTION LOG prints
# the key figure); returns its exit status.
step_finish() {
  local name="$1" figure_fn="$2"
  local rc log="${step_log[$name]}" limit="${step_limit[$name]}"
  wait "${step_pid[$name]}"
  rc=$?
  local took
  took="$(awk -v a="${step_t0[$name]}" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
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

# run_step NAME TIMEOUT FIGURE_FUNCTION COMMAND...: one step, waited for.
run_step() {
  local name="$1" limit="$2" figure_fn="$3"
  shift 3
  step_start "$name" "$limit" "$@" || return 1
  step_finish "$name" "$figure_fn"
}

# sanitizer_steps TIMEOUT TOOL...: compute-sanitizer --tool TOOL over the "[sanitize]" GPU tests, a
# step (log, summary row) per tool. The tools run side by side (one GPU and 16 cores hold the
# three instrumented processes; together they take as long as the slowest, not the sum), or one
# after another with FMNIST_GPU_CHECK_SANITIZE_PARALLEL=0.
sanitizer_steps() {
  local limit="$1" tool
  shift
  local started=()
  for tool in "$@"; do
    if [ "${FMNIST_GPU_CHECK_SANITIZE_PARALLEL:-1}" = 1 ]; then
      step_start "$tool" "$limit" "$sanitizer" --tool "$tool" --error-exitcode 1 --print-limit 50 \
        "$gpu_tests" "[sanitize]" && started+=("$tool")
    else
      run_step "$tool" "$limit" figure_sanitizer "$sanitizer" --tool "$tool" --error-exitcode 1 \
        --print-limit 50 "$gpu_tests" "[sanitize]"
    fi
  done
  for tool in "${started[@]}"; do step_finish "$tool" figure_sanitizer; done
  return 0
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
  echo "repo: $repo (commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet 2>/dev/null || echo ', with local changes'); $(source_tree))"
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
  # The figures need cairo (and the tests libpng), which the bundle leaves out: drawn only when the machine
  # has both; fmnist reproduce and report are built either way.
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
figure_bench() {
  local line
  line="$(grep -m1 -E '^AE\(256\) +100 ' "$1" | awk '{ print "AE(256) b100: " $3 " img/s" }')"
  if [ -n "$line" ]; then echo "$line"; else grep -m1 -iE 'error' "$1"; fi
}
# Where a step's time goes, range by range inside the replayed graph (fmnist bench --measure
# layers): AE(256) and C(256) on the defaults (LOGDIR/layers.json), then with every convolution
# pass on fmnist's kernels (layers-direct.json): layer by layer, cuDNN's time against fmnist's.
layers_run() {
  "$fmnist" bench --device cuda --measure layers --models ae256,c256 --json "$log_dir/layers.json" &&
    echo && echo "with FMNIST_CONV_DGRAD=fmnist FMNIST_CONV_FWD=fmnist:" &&
    env FMNIST_CONV_DGRAD=fmnist FMNIST_CONV_FWD=fmnist "$fmnist" bench --device cuda --measure layers \
      --models ae256,c256 --json "$log_dir/layers-direct.json" &&
    echo && python3 "$repo/tools/layers_compare.py" "$log_dir/layers.json" "$log_dir/layers-direct.json" \
      --names defaults,direct
}
figure_layers() {
  local line
  line="$(grep -m1 -E '^AE\(256\) batch 100:' "$1" | sed 's/ with its ranges timed.*//')"
  if [ -n "$line" ]; then echo "$line (ranges timed)"; else grep -m1 -iE 'error' "$1"; fi
}
figure_torch() { grep -m1 -E '^AE\(256\) +100 +eager' "$1" | awk '{ print "eager AE(256) b100: " $4 " img/s" }'; }
# The side-by-side table of fmnist and PyTorch on this card (tools/bench_compare.py).
# The status a step got in this run ("" when it did not run).
status_of() {
  local i
  for i in "${!names[@]}"; do [ "${names[$i]}" = "$1" ] && { echo "${statuses[$i]}"; return; }; done
}

# The fastest training path (FMNIST_GPU_CHECK_PATH=auto): of the bench variants that ran, the one
# with the most AE(256) batch-100 images/s, when at least 3 % over the defaults' and the GPU tests
# (which check every variant against the CPU and one stream) passed in this run; written to
# BUILD_DIR/fast-path.env for the measurement steps (here and in a later call on the same build).
# Without a winner the file is removed: the defaults are measured.
# choose_fast_path GPU_TESTS_STATUS VARIANT...: VARIANTs as in bench_variants; bench-combo's
# (LOGDIR/bench-combo.env) joins them when it ran.
choose_fast_path() {
  local env_file="$build_dir/fast-path.env"
  rm -f "$env_file"
  if [ "$1" != PASS ]; then
    echo "fast path: the defaults (gpu-tests and gpu-tests-fast did not both pass in this run: ${1:-not run})"
    return 0
  fi
  shift
  python3 "$repo/tools/bench_variants.py" choose "$log_dir" "$env_file" "$@"
}
# bench-combo: the options whose variant alone beat the defaults' AE(256) b100 images/s by 1 % or
# more, benched together (LOGDIR/bench-fmnist-combo.json, its environment in bench-combo.env), when
# they are at least two and not all of bench-fast's. bench-fast takes every option, also one that
# slows the step down (a direct kernel slower than cuDNN's at these shapes); this one leaves those
# out. combo_options VARIANT... prints the environment, or nothing.
combo_options() { python3 "$repo/tools/bench_variants.py" combo "$log_dir" "$@"; }
# bench_combo VARIANT...: VARIANTs as in bench_variants.
bench_combo() {
  local combo_env
  combo_env="$(combo_options "$@")"
  rm -f "$log_dir/bench-combo.env" "$log_dir/bench-fmnist-combo.json"
  if [ -z "$combo_env" ]; then
    echo "combo: not run (fewer than two options beat the defaults alone, or they are all of bench-fast's)"
    return 0
  fi
  echo "combo: $combo_env"
  echo "$combo_env" >"$log_dir/bench-combo.env"
  # shellcheck disable=SC2086  # combo_env holds several NAME=VALUE words
  env $combo_env "$fmnist" bench --device cuda --measure step --json "$log_dir/bench-fmnist-combo.json"
}
figure_bench_combo() {
  if grep -q '^combo: not run' "$1"; then grep -m1 '^combo: ' "$1" | sed 's/^combo: //'; else figure_bench "$1"; fi
}
figure_fast_path() { grep -m1 '^fast path:' "$1" | sed 's/^fast path: //'; }

# The defaults' table in ratio.txt, each variant's that ran (bench-cudnn, -dgrad, -fwd, -streams, -pdl, -fast) in
# ratio-VARIANT.txt.
bench_ratio() {
  python3 "$repo/tools/bench_compare.py" "$log_dir/bench-fmnist.json" "$log_dir"/bench-torch-*.json \
    >"$log_dir/ratio.txt" && cat "$log_dir/ratio.txt" || return 1
  local variant json
  for json in "$log_dir"/bench-fmnist-*.json; do
    [ -s "$json" ] || continue
    variant="${json##*/bench-fmnist-}"
    variant="${variant%.json}"
    echo
    python3 "$repo/tools/bench_compare.py" "$json" "$log_dir"/bench-torch-*.json >"$log_dir/ratio-$variant.txt" &&
      cat "$log_dir/ratio-$variant.txt" || return 1
  done
}
figure_compare() { grep -m1 '^compare:' "$1" | sed 's/^compare: //'; }

# tests/test_kill_resume.cpp with every run on the GPU: `fmnist train` (AE(16), dropout, 3 short
# epochs, deterministic cuDNN algorithms and CUDA graphs) killed with SIGKILL at random moments,
# stopped with SIGTERM and SIGINT (mid-epoch checkpoints), resumed with `fmnist train --resume DIR`
# each time, and its weights, Adam state, per-epoch weights and metrics compared byte for byte
# with an uninterrupted GPU run's.
kill_resume() { FMNIST_KILL_RESUME_DEVICE=cuda "$build_dir/tests/fmnist_tests" "[resume][kill]" --durations yes; }
figure_kill_resume() {
  local result interruptions
  result="$(grep -m1 -E '^All tests passed|^test cases:' "$1")"
  interruptions="$(grep -m1 -oE '[0-9]+ interruptions' "$1")"
  echo "${result:-no Catch2 summary}${interruptions:+; $interruptions + SIGTERM/SIGINT, resumed, compared bitwise}"
}

train() {  # train MODEL DEVICE OUT: 2 epochs of MODEL(256) on DEVICE, the run written to OUT
  rm -rf "$3"
  FMNIST_CUDA_VERBOSE=1 "$fmnist" train --model "$1" --latent 256 --epochs 2 --device "$2" \
    --data-dir "$data_dir" --out "$3"
}

# The git tree id of the files as they are here, tracked and untracked-not-ignored (the device tool
# sends the working tree with the .git of the session's start, so HEAD alone can name an older
# commit): `git log --format='%h %T'` on the dev machine finds the commit that holds this tree.
source_tree() {
  local index tree
  index="$(mktemp)" || { echo "tree unknown"; return; }
  rm -f "$index"
  tree="$(GIT_INDEX_FILE="$index" git -C "$repo" add -A . 2>/dev/null &&
    GIT_INDEX_FILE="$index" git -C "$repo" write-tree 2>/dev/null)"
  rm -f "$index"
  echo "tree ${tree:-unknown}" | cut -c1-15
}

# ---- the measurements ------------------------------------------------------------------------------
# Wall seconds since T0 (date +%s.%N).
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
# The settings shortening a dry run (none in the real thing).
measure_args() {
  echo "--device $measure_device --epochs $measure_epochs"
  [ "$measure_max_steps" != 0 ] && echo "--max-steps-per-epoch $measure_max_steps"
}

# 100 epochs of AE(256) as the issue measures them: the real data resident on the GPU, CUDA graphs
# (the default), last/best/state written every epoch as always but no epoch-NNNN copies; the wall
# time of the whole process (start, data loading, CUDA set-up, training, validation, checkpoints).
ae256_100() {
  local out="$log_dir/ae256-100" placement=() t0 rc
  rm -rf "$out"
  [ "$measure_device" = cuda ] && placement=(--data-placement resident)
  t0="$(date +%s.%N)"
  # shellcheck disable=SC2046  # measure_args prints several arguments
  "$fmnist" train --model ae --latent 256 $(measure_args) "${placement[@]}" --checkpoint-every 0 \
    --data-dir "$data_dir" --out "$out"
  rc=$?
  local wall
  wall="$(since "$t0")"
  echo "wall: $wall s (fmnist train, start to exit)"
  echo "wall_seconds=$wall epochs=$measure_epochs"  # read back by figure_ae256_100, with final:
  return "$rc"
}
figure_ae256_100() {
  local wall mae epochs
  wall="$(sed -n 's/^wall_seconds=\([0-9.]*\).*/\1/p' "$1" | head -1)"
  epochs="$(sed -n 's/^wall_seconds=.* epochs=\([0-9]*\).*/\1/p' "$1" | head -1)"
  mae="$(sed -n 's/^final:.* val loss \([0-9.e+-]*\).*/\1/p' "$1" | head -1)"
  [ -z "$mae" ] && { grep -m1 -iE 'error' "$1"; return; }
  awk -v w="$wall" -v m="$mae" -v e="$epochs" 'BEGIN {
    if (e == 100) {
      printf "wall %.1f s (<= 10: %s), val MAE %.5f (<= 0.0547: %s)", w, (w <= 10 ? "MET" : "MISSED"), m, (m <= 0.0547 ? "MET" : "MISSED")
    } else {
      printf "wall %.1f s, val MAE %.5f after %s epochs (dry run: targets n/a)", w, m, e
    }
  }'
  # "time: T s of training, V s of validation (E epochs, validation batches of B)"
  sed -n 's/^time: \([0-9.]*\) s of training, \([0-9.]*\) s of validation (.*batches of \([0-9]*\))$/; training \1 s, validation \2 s (batches of \3)/p' "$1" | head -1 | tr -d '\n'
  # "checkpoints: DIR/{best,last}.safetensors (N written beside training: W s of writing, X s waited for)"
  sed -n 's/^checkpoints: .*(\([0-9]*\) written beside training: \([0-9.]*\) s of writing, \([0-9.]*\) s waited for)/; checkpoints \2 s, waited \3 s/p' "$1" | head -1 | tr -d '\n'
}

# The key figures of a reproduction (its results.json), on one "key:" line.
reproduce_key() {
  python3 - "$1/results.json" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print("key: no results.json (%s)" % e)
    sys.exit(0)
runs = {r["name"]: r for r in j.get("runs", [])}
scale = j.get("scale", {})
parts = ["wall %.1f s on %s" % (scale.get("total_wall_seconds", float("nan")), scale.get("backend", "?"))]
def fw(name, split, what):
    try:
        return runs[name]["final_weights"][split][what]
    except (KeyError, TypeError):
        return None
if "ae256" in runs:
    v = runs["ae256"].get("final", {}).get("val_loss")
    parts.append("AE(256) val MAE %s" % ("%.5f" % v if v is not None else "-"))
for name, title in (("c256", "C(256)"), ("c256-improved", "C(256) improved")):
    if name in runs:
        v = fw(name, "t10k", "accuracy")
        parts.append("%s t10k %s" % (title, "%.4f" % v if v is not None else "-"))
failed = [n for n, r in runs.items() if r.get("status") != "ok"]
if failed:
    parts.append("not ok: " + ", ".join(failed))
# CUDA graphs (results.json of an fmnist that records them): a failed capture costs speed only.
graphs = [r["graphs"] for r in runs.values() if isinstance(r.get("graphs"), dict)]
if graphs:
    captured = sum(g.get("captured", 0) for g in graphs)
    failures = {n: r["graphs"].get("failed_captures", 0) for n, r in runs.items() if isinstance(r.get("graphs"), dict)}
    parts.append("graphs %d captured, %d failed%s" % (
        captured, sum(failures.values()),
        " (%s)" % ", ".join("%s %d" % (n, f) for n, f in failures.items() if f) if any(failures.values()) else ""))
# The targets this reproduction has the runs for (--recipe improved: only its own).
t = [x for x in j.get("targets", []) if "not in this reproduction" not in (x.get("detail") or "")]
count = {}
for x in t:
    count[x.get("status")] = count.get(x.get("status"), 0) + 1
missed = [x["id"] for x in t if (x.get("status") or "").lower() == "fail"]
parts.append("targets " + ", ".join("%d %s" % (v, k) for k, v in sorted(count.items())) +
             (" (missed: %s)" % ", ".join(missed) if missed else ""))
print("key: " + "; ".join(parts))
for x in t:
    print("target [%s] %s: %s" % (x.get("status"), x.get("description"), x.get("detail")))
PY
}
figure_key() {
  local line
  line="$(grep -m1 '^key: ' "$1" | sed 's/^key: //')"
  if [ -n "$line" ]; then echo "$line"; else grep -m1 -iE 'error|fail' "$1"; fi
}
# reproduce RECIPE OUT: `fmnist reproduce` into OUT, its weights deleted afterwards (reproduce.json,
# results.json, figures.json and report.html stay, and the figures where this build drew them), and
# the report rendered in chromium where its figures were drawn and there is one. Without cairo the
# figures are drawn later, from those files, by `fmnist report OUT` on the dev machine.
reproduce_run() {
  local recipe="$1" out="$2" t0 rc
  rm -rf "$out"
  t0="$(date +%s.%N)"
  # shellcheck disable=SC2046  # measure_args prints several arguments
  "$fmnist" reproduce --recipe "$recipe" $(measure_args) --data-dir "$data_dir" --out "$out"
  rc=$?
  echo "wall: $(since "$t0") s (fmnist reproduce --recipe $recipe, start to exit)"
  find "$out" -name '*.safetensors' -delete 2>/dev/null
  reproduce_key "$out"
  if [ ! -d "$out/figures" ]; then
    echo "figures: not drawn here (this build has no cairo); on the dev machine: fmnist report DIR, then tools/browser_check.sh"
  elif [ -f "$out/report.html" ]; then
    if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
      "$repo/tools/browser_check.sh" "$out/report.html" --screenshot "$out/report-screenshot.png" ||
        echo "browser: the report's check failed (the step's status is the reproduction's)"
    else
      echo "browser: no chromium on this machine: no screenshot of the report"
    fi
  fi
  return "$rc"
}

# torch.compile: one process (and JSON) per model and mode, each given at most compile_limit
# seconds and what is left of the step, so that one slow compile (max-autotune) costs only itself
# (a mode cut short is said, not failed); then the ratio table with them. Fails when no mode ran.
torch_compile() {
  local rc=0 model mode left models modes sub measured=0
  models="$(echo "$compile_models" | tr ',' ' ')"
  modes="$(echo "$compile_modes" | tr ',' ' ')"
  if [ ! -f "$log_dir/bench-fmnist.json" ] && ls "$build_dir"/bench-fmnist*.json >/dev/null 2>&1; then
    # An earlier call on this machine and build (call 1) ran the bench steps and PyTorch eager.
    echo "fmnist's bench and PyTorch eager: the JSON files of an earlier call on this build ($build_dir)"
    cp "$build_dir"/bench-fmnist*.json "$build_dir"/bench-torch-eager.json "$log_dir/" 2>/dev/null
  fi
  if [ ! -f "$log_dir/bench-torch-eager.json" ]; then
    python3 "$repo/tools/torch_baseline.py" --device cuda --modes eager --models "$compile_models" \
      --json "$log_dir/bench-torch-eager.json" || rc=1
  fi
  for model in $models; do
    for mode in $modes; do
      left=$((${STEP_DEADLINE:-0} - $(date +%s) - 10))
      [ "$left" -gt "$compile_limit" ] && left="$compile_limit"
      if [ "$left" -lt 20 ]; then
        echo "torch-compile: $model $mode not run (${left}s of the step left)"
        continue
      fi
      echo "--- $model $mode (at most ${left}s)"
      timeout --kill-after=5 "$left" python3 "$repo/tools/torch_baseline.py" --device cuda --modes "$mode" \
        --models "$model" --json "$log_dir/bench-torch-$mode-$model.json"
      sub=$?
      case "$sub" in
        0) measured=$((measured + 1)) ;;
        124 | 137) echo "torch-compile: $model $mode cut after ${left}s (not measured)" ;;
        *) echo "torch-compile: $model $mode failed (exit $sub)" ;;
      esac
    done
  done
  [ "$measured" -eq 0 ] && rc=1
  if [ -f "$log_dir/bench-fmnist.json" ]; then
    bench_ratio || rc=1
  else
    echo "no bench-fmnist.json (no bench step ran on this build): no ratio table"
  fi
  local line
  line="$(grep -m1 'vs best torch.compile' "$log_dir/ratio.txt" 2>/dev/null | sed 's/  */ /g')"
  [ -n "$line" ] && echo "key: $line"
  return "$rc"
}
figure_torch_compile() {
  local key best cut
  key="$(grep -m1 '^key: ' "$1" | sed 's/^key: //')"
  best="$(awk '$1 ~ /^(AE|C)\(/ && $3 ~ /^compile/ { printf "%s%s %s %s img/s (compile %s s)", sep, $1, $3, $4, $7; sep = "; " }' "$1")"
  cut="$(grep -E '^torch-compile: .* (cut|failed)' "$1" | sed -E 's/^torch-compile: [^ ]+ ([^ ]+) (cut|failed).*/\1 \2/' | paste -sd, -)"
  echo "${key:+$key; }${best:-no compile result}${cut:+; $cut}"
}

# Nsight Compute over one AE(256) training step (tools/profile.sh, its ncu pass only).
# TF32's accuracy over a full run (issue 4, item 6): AE(256) and C(256), 100 epochs, --precision
# tf32, as ae256-100 runs FP32; the classifier's final weights evaluated on all t10k images.
tf32_100() {
  local out="$log_dir/tf32-100" model rc=0
  rm -rf "$out"
  # TF32 is cuDNN's and cuBLAS's: fmnist's direct convolution kernels (the default backward-filter,
  # and any a fast path chose above) would keep those passes in FP32, so cuDNN's run every pass here.
  # (fmnist's split-K Linear products step aside in TF32 by themselves; unset, config.json says so.)
  unset FMNIST_CONV_DGRAD FMNIST_CONV_FWD FMNIST_LINEAR_FWD FMNIST_LINEAR_DGRAD FMNIST_LINEAR_WGRAD
  export FMNIST_CONV_WGRAD=cudnn
  for model in ae classifier; do
    # shellcheck disable=SC2046  # measure_args prints several arguments
    "$fmnist" train --model "$model" --latent 256 $(measure_args) --precision tf32 --checkpoint-every 0 \
      --data-dir "$data_dir" --out "$out/$model" || rc=1
  done
  "$fmnist" eval --checkpoint "$out/classifier/last.safetensors" --split t10k --device "$measure_device" \
    --precision tf32 --data-dir "$data_dir" | grep -m1 '^accuracy' | sed 's/^/t10k /' || rc=1
  return "$rc"
}
figure_tf32_100() {
  local mae acc
  mae="$(sed -n 's/^final:.* val loss \([0-9.e+-]*\) (best.*/\1/p' "$1" | head -1)"
  acc="$(sed -n 's/^t10k accuracy \([0-9.]*\).*/\1/p' "$1" | head -1)"
  echo "TF32, 100 epochs: AE(256) val MAE ${mae:-?} (FP32 on an H100: 0.05665), C(256) t10k ${acc:-?} (FP32: 0.9109)"
}

# ncu_profile [DIR]: into LOGDIR/DIR (default profile), with the environment it is given.
ncu_profile() {
  local rc out="$log_dir/${1:-profile}"
  FMNIST_BIN="$fmnist" FMNIST_PROFILE_TOOLS=ncu FMNIST_PROFILE_STEPS=1 FMNIST_PROFILE_LAUNCH_COUNT="$ncu_kernels" \
    bash "$repo/tools/profile.sh" "$out"
  rc=$?
  [ -f "$out/ncu.log" ] && { echo "--- ncu.log (tail)"; tail -20 "$out/ncu.log"; }
  if [ -s "$out/kernels.txt" ]; then
    awk 'NR == 2 && NF >= 8 {
      name = substr($0, 1, 100); sub(/ +$/, "", name)
      printf "key: heaviest kernel %s (%s%% of GPU time): %s GFLOP/s, %s GB/s DRAM; SM %s%%, mem %s%% of peak\n",
        name, $(NF-4), $(NF-3), $(NF-2), $(NF-1), $NF }' "$out/kernels.txt"
  fi
  return "$rc"
}
# ncu_profile with every convolution pass on fmnist's direct kernels and every Linear product on its
# split-K kernel (the ncu-direct step).
ncu_direct_profile() {
  FMNIST_CONV_FWD=fmnist FMNIST_CONV_DGRAD=fmnist FMNIST_CONV_WGRAD=fmnist FMNIST_LINEAR_FWD=fmnist \
    FMNIST_LINEAR_DGRAD=fmnist FMNIST_LINEAR_WGRAD=fmnist \
    ncu_profile profile-direct
}
# Nsight Systems over a warm-up and a timed epoch of AE(256) (tools/profile.sh's nsys pass), cut
# into steps by tools/step_timeline.py: span, busy and idle time of a training and an evaluation
# step, each stream's share, the median training step kernel by kernel (LOGDIR/timeline/steps.txt).
timeline_profile() {
  local rc
  FMNIST_BIN="$fmnist" FMNIST_PROFILE_TOOLS=nsys bash "$repo/tools/profile.sh" "$log_dir/timeline"
  rc=$?
  [ -s "$log_dir/timeline/steps.txt" ] && { echo "--- steps.txt"; cat "$log_dir/timeline/steps.txt"; }
  return "$rc"
}
figure_timeline() {
  local line
  line="$(grep -m1 '^training steps:' "$1" | sed 's/^training steps: [0-9]*; median //')"
  [ -n "$line" ] && { echo "training step: $line"; return; }
  grep -m1 -oE 'nsys not found|nsys failed[^;]*|steps: no step table' "$1"
}
figure_ncu() {
  local line
  line="$(grep -m1 '^key: ' "$1" | sed 's/^key: //')"
  [ -n "$line" ] && { echo "$line"; return; }
  grep -m1 -oE 'ERR_NVGPUCTRPERM|ncu not found|ncu failed[^;]*' "$1"
}

gpu_tests="$build_dir/tests/gpu/fmnist_gpu_tests"
# The GPU test cases of the opt-in fast path (tags) and all the others (the default path's).
fast_path_tests='[wgrad],[dgrad],[linear-split],[streams],[pdl]'
default_path_tests='~[wgrad]~[dgrad]~[linear-split]~[streams]~[pdl]'
fmnist="$build_dir/fmnist"
export repo data_dir build_dir jobs sanitizer py_cudnn fmnist bundle deps log_dir
export measure_device measure_epochs measure_max_steps compile_models compile_modes compile_limit ncu_kernels
export -f info unpack_deb unpack_deps configure cpu_ctest train final_figures compare_runs bench_ratio kill_resume layers_run
export -f choose_fast_path combo_options bench_combo
export -f since measure_args ae256_100 reproduce_key reproduce_run torch_compile ncu_profile ncu_direct_profile timeline_profile tf32_100

echo "gpu_check: data $data_dir, logs $log_dir, build $build_dir, budget ${budget}s, steps ${FMNIST_GPU_CHECK_STEPS:-all}"
run_step info 30 figure_info info

# A later call on the same machine (FMNIST_GPU_CHECK_STEPS without configure and build) uses the
# build directory's binaries as they are, when it has them.
have_build=0
[ -x "$fmnist" ] && [ -e "$build_dir/libfmnist_cuda.so" ] && [ -x "$gpu_tests" ] && have_build=1
reuse_build=0
[ -z "$prebuilt" ] && ! want configure && ! want build && [ "$have_build" = 1 ] && reuse_build=1

# The bundle: unpacked in a step (timed, logged), its settings read back into this shell. The
# binaries find its libraries through their RPATH (and LD_LIBRARY_PATH below): a run that reuses a
# build reuses the unpacked prefix too, or unpacks it again where it is gone.
FMNIST_DEPS_CMAKE_ARGS="" FMNIST_DEPS_RUN_LIBS=""
if [ -n "$prebuilt" ] && [ -z "$(ls "$bundle"/debs/*.deb 2>/dev/null)" ]; then
  record deps SKIP 0 "prebuilt tree, no bundle"
elif [ -z "$(ls "$bundle"/debs/*.deb 2>/dev/null)" ]; then
  record deps SKIP 0 "no $bundle/debs: the machine's own packages (run tools/gpu_bundle.sh first)"
elif ! want deps && [ -f "$deps/env.sh" ] && { [ "$reuse_build" = 1 ] || [ -n "$prebuilt" ]; }; then
  # shellcheck disable=SC1091
  . "$deps/env.sh"
  record deps SKIP 0 "not selected: the prefix $deps as unpacked before"
else
  want deps || echo "gpu_check: deps not selected, but $deps/env.sh is missing or a build is due: unpacking"
  run_step deps 90 figure_deps unpack_deps
  # shellcheck disable=SC1091
  [ -f "$deps/env.sh" ] && . "$deps/env.sh"
fi
export FMNIST_DEPS_CMAKE_ARGS FMNIST_DATA_DIR="$data_dir"

if [ "$reuse_build" = 1 ]; then
  record build SKIP 0 "not selected: $(basename "$build_dir")'s binaries as they are"
  build_ok=1
elif [ -n "$prebuilt" ]; then
  echo "prebuilt tree $build_dir: configure and build skipped" >"$log_dir/prebuilt.txt"
  record configure SKIP 0 "prebuilt: $build_dir"
  record build SKIP 0 "prebuilt"
  build_ok=1
  [ -x "$build_dir/fmnist" ] && [ -e "$build_dir/libfmnist_cuda.so" ] && [ -x "$build_dir/tests/gpu/fmnist_gpu_tests" ] || build_ok=0
else
  build_ok=0
  { want configure && want build; } || [ "$steps_sel" = all ] ||
    echo "gpu_check: no binaries in $build_dir (or configure/build selected): configuring and building"
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

# The order puts what must work first (the GPU ops and tests, real training, kill-and-resume, the
# sanitizers), the measurements after, and the CPU suite (already run where fmnist is developed)
# last: a step that would start with under 20 s of the budget left is skipped, not failed.
if [ "$build_ok" -eq 1 ]; then
  # Verbose: every comparison's worst error, and the cuDNN algorithms each geometry got.
  # Two runs that together hold every test case: the default path's, then the opt-in fast path's
  # (fmnist's direct convolution kernels, side backward streams), so that a failure in either says
  # which path it is on.
  want gpu-tests && run_step gpu-tests 180 figure_catch env FMNIST_GPU_TEST_VERBOSE=1 FMNIST_CUDA_VERBOSE=1 \
    "$gpu_tests" --durations yes "$default_path_tests"
  want gpu-tests && run_step gpu-tests-fast 120 figure_catch env FMNIST_GPU_TEST_VERBOSE=1 FMNIST_CUDA_VERBOSE=1 \
    "$gpu_tests" --durations yes "$fast_path_tests"
  ae_gpu_log="" c_gpu_log=""
  if want train-ae256; then
    run_step train-ae256 90 figure_train train ae cuda "$log_dir/ae256"
    ae_gpu_log="$log_dir/$(printf '%02d' "$step_number")-train-ae256.log"
  fi
  if want train-c256; then
    run_step train-c256 90 figure_train train classifier cuda "$log_dir/c256"
    c_gpu_log="$log_dir/$(printf '%02d' "$step_number")-train-c256.log"
  fi
  if ! want kill-resume; then
    :
  elif [ -n "$prebuilt" ]; then
    record kill-resume SKIP 0 "prebuilt tree: its tests hold another machine's paths"
  else
    run_step kill-resume 120 figure_kill_resume kill_resume
  fi
  sanitize=()
  for s in memcheck initcheck racecheck; do want "$s" && sanitize+=("$s"); done
  if [ ${#sanitize[@]} -eq 0 ]; then
    :
  elif [ -n "$sanitizer" ]; then
    sanitizer_steps 150 "${sanitize[@]}"
  else
    for s in "${sanitize[@]}"; do record "$s" FAIL 0 "compute-sanitizer not found"; done
  fi
  want bench && run_step bench 120 figure_bench "$fmnist" bench --device cuda --measure step --json "$log_dir/bench-fmnist.json"
  # The same with each opt-in option of the fast path, then all of them (bench_variants).
  for variant in "${bench_variants[@]}"; do
    read -r variant_step variant_env <<<"$variant"
    # shellcheck disable=SC2086  # variant_env holds several NAME=VALUE words
    want "$variant_step" && run_step "$variant_step" 120 figure_bench env $variant_env "$fmnist" bench --device cuda \
      --measure step --json "$log_dir/bench-fmnist-${variant_step#bench-}.json"
  done
  want bench-combo && run_step bench-combo 120 figure_bench_combo bench_combo "${bench_variants[@]}"
  has_torch=0
  python3 -c 'import torch' >/dev/null 2>&1 && has_torch=1
  if want torch-eager; then
    if [ "$has_torch" = 1 ]; then
      run_step torch-eager 150 figure_torch python3 "$repo/tools/torch_baseline.py" --device cuda --modes eager \
        --json "$log_dir/bench-torch-eager.json"
    else
      record torch-eager SKIP 0 "python3 has no torch"
    fi
  fi
  want ratio && [ "$has_torch" = 1 ] && run_step ratio 20 figure_none bench_ratio
  want layers && run_step layers 60 figure_layers layers_run
  # Kept beside the build for a later call's torch-compile ratio table (its LOGDIR is another).
  for f in "$log_dir"/bench-fmnist*.json "$log_dir"/bench-torch-eager.json; do
    [ -s "$f" ] && cp "$f" "$build_dir/"
  done
  # Which path the measurements below (in this call or a later one on this build) take.
  if want bench && [ "${FMNIST_GPU_CHECK_PATH:-auto}" = auto ]; then
    fast_tests_status="$(status_of gpu-tests)"
    [ "$fast_tests_status" = PASS ] && fast_tests_status="$(status_of gpu-tests-fast)"
    run_step fast-path 20 figure_fast_path choose_fast_path "$fast_tests_status" "${bench_variants[@]}"
  fi
  if [ "${FMNIST_GPU_CHECK_PATH:-auto}" = auto ] && [ -s "$build_dir/fast-path.env" ]; then
    # shellcheck disable=SC1091
    . "$build_dir/fast-path.env"
    measure_path="$(sed 's/^export //' "$build_dir/fast-path.env" | paste -sd' ')"
    echo "measurements below run with: $measure_path"
  fi
  # The measurements issue 4 needs: 100 epochs of AE(256), the torch.compile comparison, one
  # profiled step, a timeline, TF32 over 100 epochs; then the whole reproduction again.
  want ae256-100 && step_need=70 run_step ae256-100 120 figure_ae256_100 ae256_100
  if ! want torch-compile; then
    :
  elif [ "$has_torch" = 1 ]; then
    step_need=60 run_step torch-compile 240 figure_torch_compile torch_compile
  else
    record torch-compile SKIP 0 "python3 has no torch"
  fi
  if ! want ncu; then
    :
  elif command -v ncu >/dev/null 2>&1; then
    step_need=45 run_step ncu 120 figure_ncu ncu_profile
  else
    record ncu SKIP 0 "ncu not found"
  fi
  if ! want ncu-direct; then
    :
  elif command -v ncu >/dev/null 2>&1; then
    step_need=45 run_step ncu-direct 120 figure_ncu ncu_direct_profile
  else
    record ncu-direct SKIP 0 "ncu not found"
  fi
  if ! want timeline; then
    :
  elif command -v nsys >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nsys ]; then
    step_need=45 run_step timeline 120 figure_timeline timeline_profile
  else
    record timeline SKIP 0 "nsys not found"
  fi
  want tf32-100 && step_need=80 run_step tf32-100 200 figure_tf32_100 tf32_100
  # Issue 5's reproduction (closed; measured on an H100 on 2026-11-27) comes after issue 4's
  # measurements, so that the budget cuts it first.
  want reproduce && step_need=90 run_step reproduce 200 figure_key reproduce_run faithful "$log_dir/reproduce"
  want reproduce-improved &&
    step_need=60 run_step reproduce-improved 120 figure_key reproduce_run improved "$log_dir/reproduce-improved"
  if [ "${FMNIST_GPU_CHECK_CPU:-0}" = 1 ] && want cpu; then
    run_step cpu-ae256 600 figure_train train ae cpu "$log_dir/ae256-cpu"
    ae_cpu_log="$log_dir/$(printf '%02d' "$step_number")-cpu-ae256.log"
    if [ -n "$ae_gpu_log" ]; then
      run_step compare-ae256 10 figure_compare compare_runs "$ae_gpu_log" "$ae_cpu_log"
    fi
    run_step cpu-c256 600 figure_train train classifier cpu "$log_dir/c256-cpu"
    c_cpu_log="$log_dir/$(printf '%02d' "$step_number")-cpu-c256.log"
    if [ -n "$c_gpu_log" ]; then
      run_step compare-c256 10 figure_compare compare_runs "$c_gpu_log" "$c_cpu_log"
    fi
  fi
  if ! want ctest; then
    :
  elif [ -n "$prebuilt" ]; then
    record ctest SKIP 0 "prebuilt tree: its CTest files hold another machine's paths"
  else
    run_step ctest 240 figure_ctest cpu_ctest
  fi
else
  for s in $known_steps; do
    case "$s" in info | deps | configure | build | cpu) continue ;; esac
    want "$s" && record "$s" SKIP 0 "no build"
  done
  failed=1
fi

# ---- summary, last ---------------------------------------------------------------------------------
# The ratio table once more, with whatever PyTorch results there are (a torch-compile step cut short
# leaves its finished modes' JSON files).
if [ -f "$log_dir/bench-fmnist.json" ] && ls "$log_dir"/bench-torch-*.json >/dev/null 2>&1; then
  bench_ratio >/dev/null 2>&1 || true
fi
total=$(($(date +%s) - start_time))
{
  echo
  echo "gpu_check summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 '^card:' "$log_dir/01-info.log" 2>/dev/null | sed 's/^card: //'), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown), $(source_tree), ${total}s)"
  [ "$steps_sel" = all ] || echo "steps: ${FMNIST_GPU_CHECK_STEPS:-all} (the others not run)"
  [ -n "${measure_path:-}" ] && echo "measurement steps ran with: $measure_path (the fastest bench variant that passed the GPU tests)"
  printf '%-18s %-8s %8s  %s\n' step status seconds "key figure"
  for i in "${!names[@]}"; do
    printf '%-18s %-8s %8s  %s\n' "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}" "${figures[$i]}"
  done
  if [ "$failed" -eq 0 ]; then echo "result: PASS"; else echo "result: FAIL"; fi
  echo "logs: $log_dir"
  if [ -s "$log_dir/ratio.txt" ]; then echo; echo "fmnist vs PyTorch on this card"; cat "$log_dir/ratio.txt"; fi
  for r in reproduce reproduce-improved; do
    for f in "$log_dir"/[0-9][0-9]-"$r".log; do
      if [ -f "$f" ] && grep -q '^target \[' "$f"; then
        echo
        echo "$r: the targets (fmnist reproduce's own check)"
        grep '^target \[' "$f"
      fi
    done
  done
} >"$log_dir/summary.txt"
if [ "$pack_logs" = 1 ]; then
  # Keep summary.txt and one archive of everything else (LOG_DIR may return few files, and little):
  # no weights (*.safetensors: checkpoints of the training runs), no Nsight Systems kernel trace
  # (trace_*.csv: steps.txt holds what it says); if it is still over 18 MiB, also no Nsight
  # Compute or Systems report or report screenshot (kernels.txt, steps.txt and the figures stay).
  archive="$(mktemp /tmp/gpu-check-logs.XXXXXX)"
  pack() { (cd "$log_dir" && tar -czf "$archive" --exclude=summary.txt --exclude='*.safetensors' --exclude='trace_*.csv' "$@" .); }
  if pack; then
    if [ "$(stat -c %s "$archive")" -gt $((18 * 1024 * 1024)) ]; then
      echo "gpu_check: the logs pack to $(($(stat -c %s "$archive") / 1048576)) MiB: leaving out *.ncu-rep, *.nsys-rep and *-screenshot.png" |
        tee -a "$log_dir/summary.txt"
      pack --exclude='*.ncu-rep' --exclude='*.nsys-rep' --exclude='*-screenshot.png'
    fi
    (cd "$log_dir" && find . -mindepth 1 -maxdepth 1 ! -name summary.txt -exec rm -rf {} + &&
      mv "$archive" gpu-check-logs.tar.gz) || echo "gpu_check: packing the logs failed; they stay as they are"
  else
    rm -f "$archive"
    echo "gpu_check: packing the logs failed; they stay as they are"
  fi
fi
cat "$log_dir/summary.txt"
exit "$failed"
