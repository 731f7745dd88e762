#!/usr/bin/python3
"""The ratio table of `fmnist bench` against tools/torch_baseline.py, measured on the same machine.

  tools/bench_compare.py FMNIST_JSON TORCH_JSON [TORCH_JSON ...] [--markdown]

FMNIST_JSON is `fmnist bench --json`; each TORCH_JSON is `tools/torch_baseline.py --json` (several:
e.g. the batch-100 run and the AE(256) sweep, or CPU runs at different thread settings; for each
model and batch the best figure of each mode across the files is used). Rows are joined on
(model, batch). Printed: fmnist's training-step images/s, PyTorch eager's and the best
torch.compile mode's, and fmnist's speed-up over each; then the targets of issue 4 with MET or
MISSED and by how much; then fmnist's whole-epoch figures. Standard library only (any python3).
Exit status 0 (a missed target is reported, not an error), 2 for unreadable input.
"""
import json
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print("bench_compare: %s: %s" % (path, e), file=sys.stderr)
        sys.exit(2)


def is_cpu(backend):
    return backend == "cpu" or backend.startswith("cpu") or " cpu" in backend


def torch_index(files):
    """(model, batch) -> {"eager": (rate, mode), "compile": (rate, mode), "best": (rate, mode)}."""
    index = {}
    for doc in files:
        for r in doc.get("results", []):
            key = (r["model"], int(r["batch"]))
            mode = r.get("mode", "eager")
            rate = float(r["median_images_per_second"])
            kinds = ["best", "compile" if mode.startswith("compile") else "eager"]
            entry = index.setdefault(key, {})
            for kind in kinds:
                if kind not in entry or rate > entry[kind][0]:
                    entry[kind] = (rate, mode)
    return index


def ratio(a, b):
    return a / b if b else float("nan")


def fmt_rate(x):
    return "-" if x is None else "%.0f" % x


def fmt_ratio(x):
    return "-" if x is None or x != x else "%.2fx" % x


def table(headers, rows, markdown):
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    for r in rows:
        out.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def main(argv):
    markdown = "--markdown" in argv
    paths = [a for a in argv if a != "--markdown"]
    if len(paths) < 2:
        print("usage: " + __doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    fmnist = load(paths[0])
    torch_docs = [load(p) for p in paths[1:]]
    torch = torch_index(torch_docs)
    backend = fmnist.get("backend", "?")
    cpu = is_cpu(backend)

    print("fmnist: %s (%s, graphs %s, tf32 %s); PyTorch: %s" % (
        backend, fmnist.get("timing", "?"), "on" if fmnist.get("graphs") else "off",
        "on" if fmnist.get("tf32") else "off", "; ".join(d.get("backend", "?") for d in torch_docs)))
    if fmnist.get("backend_note"):
        print("fmnist's backend: %s" % fmnist["backend_note"])
    print()

    # Step rows: the "step" measure first; a sweep row only where no step row has its key.
    seen, steps = set(), []
    for r in sorted(fmnist.get("results", []), key=lambda r: r.get("measure", "step") != "step"):
        key = (r["model"], int(r["batch"]))
        if key not in seen:
            seen.add(key)
            steps.append(r)
    headers = ["model", "batch", "fmnist img/s", "eager img/s", "vs eager", "best compile", "compile img/s",
               "vs compile", "best torch", "vs best"]
    rows, ratios = [], {}
    for r in steps:
        key = (r["model"], int(r["batch"]))
        ours = float(r["median_images_per_second"])
        t = torch.get(key, {})
        eager = t.get("eager", (None, None))[0]
        comp_rate, comp_mode = t.get("compile", (None, None))
        best_rate, best_mode = t.get("best", (None, None))
        vs_eager = ratio(ours, eager) if eager else None
        vs_comp = ratio(ours, comp_rate) if comp_rate else None
        vs_best = ratio(ours, best_rate) if best_rate else None
        ratios[key] = (vs_eager, vs_comp, vs_best)
        rows.append([r["model"], str(key[1]), fmt_rate(ours), fmt_rate(eager), fmt_ratio(vs_eager),
                     comp_mode or "-", fmt_rate(comp_rate), fmt_ratio(vs_comp), best_mode or "-",
                     fmt_ratio(vs_best)])
    print("training step, images per second (median; ratio = fmnist / PyTorch)")
    print(table(headers, rows, markdown))
    print()

    # Targets of issue 4.
    checks = []
    def check(label, value, goal):
        if value is None or value != value:
            checks.append([label, "-", ">= %.2fx" % goal, "NOT MEASURED"])
        else:
            verdict = "MET" if value >= goal else "MISSED by %.0f%%" % (100 * (1 - value / goal))
            checks.append([label, "%.2fx" % value, ">= %.2fx" % goal, verdict])
    if cpu:
        for model in ("AE(256)", "C(256)"):
            check("%s batch 100 vs best PyTorch CPU" % model, ratios.get((model, 100), (None,) * 3)[2], 1.0)
    else:
        vs_eager, vs_comp, _ = ratios.get(("AE(256)", 100), (None, None, None))
        check("AE(256) batch 100 vs PyTorch eager", vs_eager, 10.0)
        check("AE(256) batch 100 vs best torch.compile", vs_comp, 2.0)
    epochs = fmnist.get("epochs", [])
    if not cpu:
        e = next((e for e in epochs if e["model"] == "AE(256)" and int(e["batch"]) == 100), None)
        if e is None:
            checks.append(["100 epochs of AE(256), validation included", "-", "<= 10 s", "NOT MEASURED"])
        else:
            s = float(e["projected_100_epochs_seconds"])
            checks.append(["100 epochs of AE(256), validation included", "%.1f s" % s, "<= 10 s",
                           "MET" if s <= 10 else "MISSED by %.1f s" % (s - 10)])
    print("targets")
    print(table(["target", "measured", "goal", "verdict"], checks, markdown))

    if epochs:
        print()
        print("whole epoch (fmnist): training and validation, synthetic data")
        def validation(e):  # older bench files lack the split
            if "median_validation_seconds" not in e:
                return "-"
            return "%.3f (batches of %s)" % (e["median_validation_seconds"], e.get("eval_batch", "?"))
        erows = [[e["model"], str(e["batch"]), e.get("placement", "?"), "%.3f" % e["median_seconds"], validation(e),
                  "%.0f" % e["images_per_second"], "%.1f" % e["projected_100_epochs_seconds"]]
                 for e in epochs]
        print(table(["model", "batch", "placement", "epoch s", "of it validation s", "train img/s", "100 epochs s"],
                    erows, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
