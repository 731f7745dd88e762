#!/usr/bin/env python3
"""Which bench variant tools/gpu_check.sh measures with: its bench-combo and fast-path steps.

A variant is "bench-X NAME=VALUE..." (gpu_check's bench_variants table): fmnist bench run with that
environment wrote LOGDIR/bench-fmnist-X.json; the defaults wrote LOGDIR/bench-fmnist.json. Each is
compared by its AE(256) batch-100 median images/s.

  bench_variants.py combo LOGDIR VARIANT...
      prints the options whose single-option variant beat the defaults by 1 % or more, when they
      are at least two and not all of the widest variant's (bench-fast's); else nothing
  bench_variants.py choose LOGDIR ENV_FILE VARIANT...
      ranks the defaults and every variant that ran (bench-combo's too, from LOGDIR/bench-combo.env)
      and writes the fastest one's environment to ENV_FILE ("export NAME=VALUE" lines) when it
      beats the defaults by 3 % or more; else ENV_FILE is left absent
"""
import json
import os
import sys

COMBO_GAIN = 1.01  # a single option's gain over the defaults for bench-combo to take it
CHOICE_GAIN = 1.03  # the fastest variant's gain over the defaults for the measurements to use it


def ae256_rate(log_dir, name):
    """AE(256) batch-100 median images/s in LOGDIR/name, or None (missing, unreadable, no row)."""
    try:
        with open(os.path.join(log_dir, name)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    for r in doc.get("results", []):
        if r.get("model") == "AE(256)" and int(r.get("batch", 0)) == 100:
            return float(r["median_images_per_second"])
    return None


def variants(specs):
    """(environment words, JSON file name) of each "bench-X ENV..." spec."""
    out = []
    for spec in specs:
        step, _, env = spec.partition(" ")
        out.append((env.split(), "bench-fmnist-%s.json" % step[len("bench-"):]))
    return out


def combo(log_dir, specs):
    base = ae256_rate(log_dir, "bench-fmnist.json")
    singles, widest = [], set()
    for words, name in variants(specs):
        widest = max(widest, set(words), key=len)
        if len(words) != 1:
            continue
        rate = ae256_rate(log_dir, name)
        if base and rate and rate >= COMBO_GAIN * base:
            singles.append(words[0])
    if len(singles) >= 2 and set(singles) != widest:
        print(" ".join(singles))
    return 0


def choose(log_dir, env_file, specs):
    if os.path.exists(env_file):
        os.remove(env_file)
    candidates = [([], "bench-fmnist.json")] + variants(specs)
    try:
        with open(os.path.join(log_dir, "bench-combo.env")) as f:
            words = f.read().split()
        if words:
            candidates.append((words, "bench-fmnist-combo.json"))
    except OSError:
        pass
    rates = {}
    for words, name in candidates:
        rate = ae256_rate(log_dir, name)
        if rate is not None:
            rates[" ".join(words)] = rate
    if "" not in rates:
        print("fast path: the defaults (no bench of them to compare with)")
        return 0
    for env, rate in sorted(rates.items(), key=lambda kv: -kv[1]):
        print("  %-96s %9.0f img/s" % (env or "defaults", rate))
    best = max(rates, key=rates.get)
    if best and rates[best] >= CHOICE_GAIN * rates[""]:
        with open(env_file, "w") as f:
            f.write("".join("export %s\n" % kv for kv in best.split()))
        print("fast path: %s (AE(256) b100 %.0f img/s, %.2fx the defaults' %.0f)"
              % (best, rates[best], rates[best] / rates[""], rates[""]))
    else:
        print("fast path: the defaults (%.0f img/s; no variant %d%% faster)"
              % (rates[""], round(100 * (CHOICE_GAIN - 1))))
    return 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "combo":
        return combo(argv[1], argv[2:])
    if len(argv) >= 3 and argv[0] == "choose":
        return choose(argv[1], argv[2], argv[3:])
    sys.stderr.write("usage: bench_variants.py combo LOGDIR VARIANT... | choose LOGDIR ENV_FILE VARIANT...\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
