#!/usr/bin/env python3
"""Where a training step's time goes on the GPU, from an Nsight Systems kernel trace.

Reads the CSV of `nsys stats --report cuda_gpu_trace --format csv` (a run traced with
--cuda-graph-trace=node, so every kernel of a replayed graph is a row), cuts it into steps at each
`advance_cursor` kernel (the last op of every training and evaluation step; a training step holds
an `adam` kernel, an evaluation step none), and prints, for each kind of step, the medians of:
  span     first kernel's start to last kernel's end
  busy     time at least one kernel runs (the union of the kernels' intervals)
  idle     span - busy: launch gaps and waits between dependent kernels
  between  the gap from one step's last kernel to the next step's first
then the kernels of the median training step in start order, with their stream, start offset and
duration, so that the critical path and each stream's share can be read off.

Usage: tools/step_timeline.py TRACE.csv [--steps N]   (N: the last N steps of each kind, default all)
"""
import argparse
import csv
import statistics
import sys


def column(header, *names):
    for name in names:
        for i, h in enumerate(header):
            if h.strip() == name:
                return i
    raise SystemExit("step_timeline: the trace has no column %s (header: %s)" % (" or ".join(names), ", ".join(header)))


def read_kernels(path):
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise SystemExit("step_timeline: %s: %s" % (path, e.strerror))
    # nsys may print notes before the table: the header is the first row naming "Start (ns)".
    start = next((i for i, r in enumerate(rows) if any(c.strip() == "Start (ns)" for c in r)), None)
    if start is None:
        raise SystemExit("step_timeline: %s holds no cuda_gpu_trace table" % path)
    header = rows[start]
    i_start, i_dur = column(header, "Start (ns)"), column(header, "Duration (ns)")
    i_name, i_stream = column(header, "Name"), column(header, "Strm", "Stream")
    kernels = []
    for r in rows[start + 1:]:
        if len(r) <= max(i_start, i_dur, i_name, i_stream) or not r[i_start].strip():
            continue
        name = r[i_name]
        if name.startswith("[CUDA"):  # memcpy / memset rows
            continue
        begin = int(float(r[i_start]))
        kernels.append((begin, begin + int(float(r[i_dur])), r[i_stream].strip(), name))
    kernels.sort()
    return kernels


def split_steps(kernels):
    steps, current = [], []
    for k in kernels:
        current.append(k)
        if "advance_cursor" in k[3]:
            steps.append(current)
            current = []
    return steps


def union_length(intervals):
    total, end = 0, None
    for b, e in sorted(intervals):
        if end is None or b > end:
            total += e - b
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def describe(step):
    span = step[-1][1] - step[0][0]
    busy = union_length([(b, e) for b, e, _, _ in step])
    return {"span": span, "busy": busy, "idle": span - busy, "kernels": len(step),
            "streams": len({s for _, _, s, _ in step})}


def short(name, width=72):
    """The kernel's name without its parameter list (the last parenthesised group), cut to width."""
    if name.endswith(")"):
        depth = 0
        for i in range(len(name) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(name[i], 0)
            if depth == 0:
                name = name[:i]
                break
    return name if len(name) <= width else name[:width - 3] + "..."


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--steps", type=int, default=0)
    args = ap.parse_args()
    steps = split_steps(read_kernels(args.trace))
    if not steps:
        raise SystemExit("step_timeline: no advance_cursor kernel in the trace: no steps to cut")
    kinds = {"training": [], "evaluation": []}
    between = {"training": [], "evaluation": []}
    for i, step in enumerate(steps):
        kind = "training" if any("adam" in k[3] for k in step) else "evaluation"
        kinds[kind].append(step)
        if i + 1 < len(steps):
            between[kind].append(steps[i + 1][0][0] - step[-1][1])
    median_train = None
    for kind, chosen in kinds.items():
        if args.steps > 0:
            chosen = chosen[-args.steps:]
        if not chosen:
            print("%s steps: none in the trace" % kind)
            continue
        stats = [describe(s) for s in chosen]
        med = {key: statistics.median(s[key] for s in stats) for key in stats[0]}
        gaps = between[kind][-len(chosen):]
        print("%s steps: %d; median span %.1f us, busy %.1f us, idle %.1f us (%.0f %%), between steps "
              "%s; %d kernels on %d stream(s)"
              % (kind, len(chosen), med["span"] / 1e3, med["busy"] / 1e3, med["idle"] / 1e3,
                 100.0 * med["idle"] / med["span"] if med["span"] else 0.0,
                 "%.1f us" % (statistics.median(gaps) / 1e3) if gaps else "n/a", med["kernels"], med["streams"]))
        if kind == "training":
            median_train = sorted(chosen, key=lambda s: describe(s)["span"])[len(chosen) // 2]
    if median_train is not None:
        t0 = median_train[0][0]
        streams = sorted({s for _, _, s, _ in median_train})
        print("\nthe median training step, kernel by kernel (start and duration in us; streams %s):"
              % ", ".join(streams))
        for b, e, s, name in median_train:
            print("  %8.1f %7.1f  stream %-4s %s" % ((b - t0) / 1e3, (e - b) / 1e3, s, short(name)))
        for s in streams:
            busy = union_length([(b, e) for b, e, st, _ in median_train if st == s])
            print("stream %s: busy %.1f us of the step's %.1f" % (s, busy / 1e3, describe(median_train)["span"] / 1e3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
