#!/usr/bin/env python3
"""Two `fmnist bench --measure layers` runs side by side, range by range (tools/gpu_check.sh's
layers step: the defaults against every convolution pass on fmnist's kernels).

For each model and batch in both JSON files: every range (phase or layer, indented by depth) with
its median microseconds in each run, the second's over the first's, and which run was faster by
more than 2 % ("=" within it); the whole step (with its ranges timed) first. A range that only one
run opened shows "-" for the other.

Usage: tools/layers_compare.py FIRST.json SECOND.json [--names FIRST,SECOND]
"""
import argparse
import json
import sys

SAME_WITHIN = 0.02  # a ratio within 2 % of 1 names no faster run


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise SystemExit("layers_compare: %s: %s" % (path, e.strerror))
    except ValueError as e:
        raise SystemExit("layers_compare: %s: not JSON (%s)" % (path, e))
    layers = doc.get("layers") if isinstance(doc, dict) else None
    if not isinstance(layers, list) or not layers:
        raise SystemExit("layers_compare: %s: no \"layers\" (run fmnist bench --measure layers --json)" % path)
    return {(t["model"], t["batch"]): t for t in layers}


def faster(a, b, names):
    if a is None or b is None or a <= 0:
        return ""
    ratio = b / a
    if abs(ratio - 1) <= SAME_WITHIN:
        return "="
    return names[1] if ratio < 1 else names[0]


def cell(v):
    return "%10.1f" % v if v is not None else "%10s" % "-"


def compare(first, second, names):
    lines = []
    for key in [k for k in first if k in second]:
        a, b = first[key], second[key]
        lines.append("%s batch %d: %s against %s, median us" % (key[0], key[1], names[1], names[0]))
        lines.append("  %-50s %10s %10s %7s  %s" % ("range", names[0][:10], names[1][:10], "ratio", "faster"))
        rows = [("step (ranges timed)", 0, a["median_step_us"], b["median_step_us"])]
        ranges_b = {r["path"]: r for r in b["ranges"]}
        seen = set()
        for r in a["ranges"]:
            other = ranges_b.get(r["path"])
            rows.append((r["path"], r["depth"], r["median_us"], other["median_us"] if other else None))
            seen.add(r["path"])
        rows += [(r["path"], r["depth"], None, r["median_us"]) for r in b["ranges"] if r["path"] not in seen]
        for path, depth, ua, ub in rows:
            name = "  " * depth + path.split(" / ")[-1]
            ratio = "%7.2f" % (ub / ua) if ua and ub is not None else "%7s" % "-"
            lines.append("  %-50s %s %s %s  %s" % (name, cell(ua), cell(ub), ratio, faster(ua, ub, names)))
    if not lines:
        raise SystemExit("layers_compare: the two files share no model and batch")
    return lines


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("first")
    p.add_argument("second")
    p.add_argument("--names", default="first,second", help="the two runs' names, comma-separated")
    args = p.parse_args(argv)
    names = args.names.split(",")
    if len(names) != 2 or not all(names):
        p.error("--names wants two names, comma-separated")
    print("\n".join(compare(load(args.first), load(args.second), names)))


if __name__ == "__main__":
    main(sys.argv[1:])
