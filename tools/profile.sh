#!/usr/bin/env bash
# Profiles a short fmnist run on the GPU and says how to read the result:
#   1. Nsight Systems (where nsys works): a timeline of one warm-up and one timed epoch of AE(256)
#      at batch 100 through `fmnist bench --measure epoch` (synthetic data, validation included):
#      NVTX ranges (train step, copy, stage batch, forward, loss, backward, optimizer,
#      validation, and each layer), the kernels of every graph node, the copies of the copy
#      stream beside them. Summaries: OUT/nsys-stats.txt; where each step's time goes (span, busy,
#      idle, each stream's share, the median training step kernel by kernel):
#      OUT/steps.txt, by tools/step_timeline.py from the kernel trace (OUT/trace_*.csv).
#   2. Nsight Compute (ncu --clock-control none, so the card runs at its own clocks as in the
#      benchmark): every kernel of two replayed training steps (`fmnist bench --measure step`,
#      filtered to the NVTX range "bench timed run"), with speed-of-light, memory and compute
#      sections and the FP32 instruction counts; OUT/kernels.txt ranks the kernels by time with
#      their achieved GFLOP/s and DRAM GB/s and the share of the card's peak compute and memory
#      throughput ncu measured (the figures bench/RESULTS.md quotes).
# Usage: tools/profile.sh [OUT_DIR]         (default ./profile)
# Environment: FMNIST_BIN (default build/fmnist), FMNIST_PROFILE_MODEL (ae256),
#   FMNIST_PROFILE_BATCH (100), FMNIST_PROFILE_NO_GRAPH=1 (launch op by op: every layer's NVTX
#   range shows on every step; with graphs a step is one graph launch inside "train step"),
#   FMNIST_PROFILE_TOOLS (nsys,ncu: which passes run), FMNIST_PROFILE_STEPS (2: training steps ncu
#   replays), FMNIST_PROFILE_LAUNCH_COUNT (0: every kernel of them; N: the first N only, e.g. to
#   bound the time ncu takes, about a second a kernel with these sections).
# Exit status: 0 when at least one profiler ran and succeeded, 1 otherwise.
set -u
set -o pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-profile}"
mkdir -p "$out" || exit 1
out="$(cd "$out" && pwd)"
bin="${FMNIST_BIN:-$repo/build/fmnist}"
model="${FMNIST_PROFILE_MODEL:-ae256}"
batch="${FMNIST_PROFILE_BATCH:-100}"
graph_flag=()
[ "${FMNIST_PROFILE_NO_GRAPH:-0}" = 1 ] && graph_flag=(--no-graph)
tools=",${FMNIST_PROFILE_TOOLS:-nsys,ncu},"
ncu_steps="${FMNIST_PROFILE_STEPS:-2}"
launch_count=()
[ "${FMNIST_PROFILE_LAUNCH_COUNT:-0}" != 0 ] && launch_count=(--launch-count "$FMNIST_PROFILE_LAUNCH_COUNT")
export PATH="$PATH:/usr/local/cuda/bin"
[ -x "$bin" ] || { echo "profile: $bin not found (build first, or set FMNIST_BIN)" >&2; exit 1; }
ok=0

echo "== Nsight Systems"
if [[ "$tools" != *,nsys,* ]]; then
  echo "not selected (FMNIST_PROFILE_TOOLS)"
elif command -v nsys >/dev/null 2>&1; then
  if nsys profile --trace=cuda,nvtx,osrt --cuda-graph-trace=node --sample=none --cpuctxsw=none \
      --force-overwrite=true -o "$out/timeline" \
      "$bin" bench --device cuda --measure epoch --models "$model" --batch-size "$batch" \
      --epoch-warmup 1 --epoch-repeats 1 "${graph_flag[@]}" >"$out/nsys.log" 2>&1; then
    # Report names changed across nsys versions: the new ones first, then the old.
    { nsys stats --report nvtx_sum,cuda_gpu_kern_sum,cuda_gpu_mem_time_sum,cuda_api_sum \
        --format table "$out/timeline.nsys-rep" 2>/dev/null ||
      nsys stats --report nvtxsum,gpukernsum,gpumemtimesum,cudaapisum \
        --format table "$out/timeline.nsys-rep"; } >"$out/nsys-stats.txt" 2>&1
    echo "timeline: $out/timeline.nsys-rep; summaries: $out/nsys-stats.txt"
    # Every kernel of every step (the report's name changed across nsys versions).
    rm -f "$out"/trace_*.csv
    nsys stats --report cuda_gpu_trace --format csv --force-export=true --output "$out/trace" \
      "$out/timeline.nsys-rep" >"$out/trace.log" 2>&1 ||
      nsys stats --report gputrace --format csv --output "$out/trace" "$out/timeline.nsys-rep" >>"$out/trace.log" 2>&1
    trace_csv="$(ls "$out"/trace_*.csv 2>/dev/null | head -1)"
    if [ -n "$trace_csv" ] && python3 "$repo/tools/step_timeline.py" "$trace_csv" >"$out/steps.txt" 2>&1; then
      echo "steps: $out/steps.txt"
      head -2 "$out/steps.txt"
    else
      echo "steps: no step table (see $out/trace.log and $out/steps.txt)"
    fi
    ok=1
  else
    echo "nsys failed (see $out/nsys.log; it needs a working CUPTI and perf permissions)"
  fi
else
  echo "nsys not found: skipped"
fi

echo "== Nsight Compute"
metrics="gpu__time_duration.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed"
metrics+=",gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed,dram__bytes.sum"
metrics+=",sm__sass_thread_inst_executed_op_ffma_pred_on.sum,sm__sass_thread_inst_executed_op_fadd_pred_on.sum"
metrics+=",sm__sass_thread_inst_executed_op_fmul_pred_on.sum,launch__grid_size,launch__block_size"
if [[ "$tools" != *,ncu,* ]]; then
  echo "not selected (FMNIST_PROFILE_TOOLS)"
elif command -v ncu >/dev/null 2>&1; then
  if ncu --clock-control none --target-processes all --nvtx --nvtx-include "bench timed run/" \
      "${launch_count[@]}" --graph-profiling node --section SpeedOfLight --section MemoryWorkloadAnalysis \
      --section ComputeWorkloadAnalysis --section LaunchStats --section Occupancy --metrics "$metrics" \
      --force-overwrite -o "$out/kernels" \
      "$bin" bench --device cuda --measure step --models "$model" --batch-size "$batch" \
      --warmup 3 --steps "$ncu_steps" --repeats 1 "${graph_flag[@]}" >"$out/ncu.log" 2>&1; then
    ncu --import "$out/kernels.ncu-rep" --csv --page raw --metrics "$metrics" >"$out/kernels-raw.csv" 2>>"$out/ncu.log"
    python3 - "$out/kernels-raw.csv" >"$out/kernels.txt" <<'EOF'
import csv, sys
from collections import OrderedDict
rows = list(csv.reader(open(sys.argv[1])))
start = next(i for i, r in enumerate(rows) if "Kernel Name" in r)
head, units, data = rows[start], rows[start + 1], rows[start + 2:]  # the row after the header holds the units
col = {name: i for i, name in enumerate(head)}
# ncu picks each column's unit by its magnitude (us or ms, Kbyte or Mbyte...): to ns and bytes.
scale = {"nsecond": 1, "ns": 1, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6, "second": 1e9, "s": 1e9,
         "byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "KB": 1e3, "MB": 1e6, "GB": 1e9}
def num(r, name):
    try:
        unit = units[col[name]] if col[name] < len(units) else ""
        return float(r[col[name]].replace(",", "")) * scale.get(unit, 1)
    except (KeyError, ValueError, IndexError):
        return 0.0
kernels = OrderedDict()
for r in data:
    if len(r) != len(head):
        continue
    name = r[col["Kernel Name"]][:100]  # room for a template's arguments (direct_conv_kernel<KS, pass, OB>)
    k = kernels.setdefault(name, {"n": 0, "ns": 0.0, "flop": 0.0, "bytes": 0.0, "sm": 0.0, "mem": 0.0})
    ns = num(r, "gpu__time_duration.sum")
    k["n"] += 1
    k["ns"] += ns
    k["flop"] += 2 * num(r, "sm__sass_thread_inst_executed_op_ffma_pred_on.sum") + \
        num(r, "sm__sass_thread_inst_executed_op_fadd_pred_on.sum") + \
        num(r, "sm__sass_thread_inst_executed_op_fmul_pred_on.sum")
    k["bytes"] += num(r, "dram__bytes.sum")
    k["sm"] += ns * num(r, "sm__throughput.avg.pct_of_peak_sustained_elapsed")
    k["mem"] += ns * num(r, "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed")
total = sum(k["ns"] for k in kernels.values()) or 1.0
print("%-100s %5s %9s %6s %9s %8s %6s %6s" % ("kernel", "calls", "us", "time%", "GFLOP/s", "GB/s", "SM%", "mem%"))
for name, k in sorted(kernels.items(), key=lambda kv: -kv[1]["ns"]):
    s = k["ns"] * 1e-9 or 1e-12
    print("%-100s %5d %9.1f %6.1f %9.1f %8.1f %6.1f %6.1f" % (
        name, k["n"], k["ns"] / 1e3, 100 * k["ns"] / total, k["flop"] / s / 1e9, k["bytes"] / s / 1e9,
        k["sm"] / (k["ns"] or 1), k["mem"] / (k["ns"] or 1)))
print("\nall kernels of the profiled steps: %.1f us of GPU time (FP32 FLOP: 2 per FFMA + FADD + FMUL;"
      " SM%%/mem%%: ncu's throughput against this card's peak, time-weighted)" % (total / 1e3))
EOF
    echo "report: $out/kernels.ncu-rep; ranked kernels: $out/kernels.txt"
    head -15 "$out/kernels.txt"
    ok=1
  else
    echo "ncu failed (see $out/ncu.log; ERR_NVGPUCTRPERM means the driver restricts performance counters to root)"
  fi
else
  echo "ncu not found: skipped"
fi

cat <<EOF

How to read it
- Timeline (nsys-ui $out/timeline.nsys-rep, or the tables in nsys-stats.txt): on the CPU thread,
  one "train step" range per step (a graph launch, a few microseconds) and "copy" ranges (the host
  gathering the next batches when the data is streamed); on the GPU, the compute stream's kernels
  back to back (gaps between steps mean the host cannot launch fast enough), and with streamed
  data the copy stream's HtoD copies running under the previous step's kernels. "validation"
  marks each epoch's evaluation. nvtx_sum gives the time per range, cuda_gpu_kern_sum the time per
  kernel, cuda_gpu_mem_time_sum the copies (resident data: almost none after the first epoch).
- Steps (steps.txt): a step's span against the time some kernel runs; the idle rest is launch
  gaps and waits between dependent kernels, the part a faster kernel does not remove. With
  FMNIST_BACKWARD_STREAMS=2 to 4 the per-stream lines show how much of the step the side streams
  carry and whether the main one waits for them before Adam.
- Kernels (ncu-ui $out/kernels.ncu-rep, or kernels.txt): per kernel, its share of a step's GPU
  time, achieved FP32 GFLOP/s and DRAM GB/s, and SM% / mem%: the fraction of the card's peak
  compute and memory throughput it reached. A kernel far below both is latency bound (too small
  a grid for the card at this batch size); one near mem% 60-90 is bandwidth bound. For
  bench/RESULTS.md: quote the heaviest kernels' GFLOP/s and GB/s against the card's ceilings.
EOF
[ "$ok" = 1 ]
