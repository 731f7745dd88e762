#!/usr/bin/python3
"""PyTorch baseline for `fmnist bench`: the same networks (tools/torch_model.py), batch sizes, Adam
and synthetic batch kept on the device, timed the same way (warm-up, then the median of repeated
runs of N steps), printed in the same table and JSON format.

Modes: eager (Adam fused=True on CUDA, foreach on the CPU) and torch.compile (each of its modes,
compile time excluded and reported separately) where this PyTorch has it.

  tools/torch_baseline.py --device cpu --threads 2 --json bench/torch-cpu.json
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_model import Autoencoder, Classifier  # noqa: E402


def parse_model(name):
    if name.startswith("ae") and name[2:].isdigit():
        return "ae", int(name[2:])
    if name.startswith("c") and name[1:].isdigit():
        return "classifier", int(name[1:])
    raise SystemExit(f"--models: '{name}' is not aeN or cN (e.g. ae256, c64)")


def describe(kind, n):
    return f"AE({n})" if kind == "ae" else f"C({n})"


def make_step(kind, n, batch, device, mode, seed):
    torch.manual_seed(seed)
    model = (Autoencoder(n) if kind == "ae" else Classifier(n)).to(device)
    if device.type == "cuda":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    generator = torch.Generator().manual_seed(seed)
    images = (torch.randint(0, 256, (batch, 1, 28, 28), generator=generator, dtype=torch.uint8)
              .to(device))
    labels = torch.randint(0, 10, (batch,), generator=generator).to(device)
    l1 = torch.nn.L1Loss()
    ce = torch.nn.CrossEntropyLoss()

    def forward_loss():
        x = images.float() / 255.0  # the scaling happens on the device, as in fmnist
        out = model(x)
        return l1(out, x) if kind == "ae" else ce(out, labels)

    if mode != "eager":
        forward_loss = torch.compile(forward_loss, mode=None if mode == "compile-default"
                                     else mode.removeprefix("compile-"))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = forward_loss()
        loss.backward()
        optimizer.step()
        return loss

    return step


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(kind, n, batch, device, mode, args):
    step = make_step(kind, n, batch, device, mode, args.seed)
    start = time.perf_counter()
    step()  # the first call compiles in compile modes
    synchronize(device)
    compile_seconds = time.perf_counter() - start if mode != "eager" else 0.0
    for _ in range(args.warmup):
        step()
    synchronize(device)
    rates = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            for _ in range(args.steps):
                step()
            end.record()
            end.synchronize()
            seconds = begin.elapsed_time(end) / 1000.0
        else:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            seconds = time.perf_counter() - t0
        rates.append(args.steps * batch / seconds)
    return {"model": describe(kind, n), "batch": batch, "mode": mode,
            "median_images_per_second": statistics.median(rates),
            "min_images_per_second": min(rates), "max_images_per_second": max(rates),
            "compile_seconds": compile_seconds}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="ae64,ae128,ae256,c64,c256")
    p.add_argument("--batch-size", type=int, nargs="+", default=[100])
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave it)")
    p.add_argument("--modes", default="eager,compile",
                   help="eager, and compile (all torch.compile modes) or compile-<mode>")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: this PyTorch sees no CUDA device")
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # FP32, as fmnist's default
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True

    modes = []
    for m in args.modes.split(","):
        if m == "compile":
            modes += ["compile-default", "compile-reduce-overhead", "compile-max-autotune"]
        else:
            modes.append(m)
    has_compile = hasattr(torch, "compile")
    where = (torch.cuda.get_device_name(0) if device.type == "cuda"
             else f"cpu, {torch.get_num_threads()} threads")
    print(f"torch {torch.__version__} on {where}", file=sys.stderr)

    results, skipped = [], []
    print(f"{'model':<10} {'batch':>6} {'mode':<24} {'median img/s':>14} {'min img/s':>12} "
          f"{'max img/s':>12} {'compile s':>10}")
    for name in args.models.split(","):
        kind, n = parse_model(name)
        for batch in args.batch_size:
            for mode in modes:
                if mode != "eager" and not has_compile:
                    skipped.append(f"{mode}: torch {torch.__version__} has no torch.compile")
                    continue
                try:
                    r = bench(kind, n, batch, device, mode, args)
                except Exception as e:  # a compile backend missing on this machine
                    skipped.append(f"{mode} {describe(kind, n)} batch {batch}: "
                                   f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
                    continue
                results.append(r)
                print(f"{r['model']:<10} {r['batch']:>6} {r['mode']:<24} "
                      f"{r['median_images_per_second']:>14.0f} {r['min_images_per_second']:>12.0f} "
                      f"{r['max_images_per_second']:>12.0f} {r['compile_seconds']:>10.1f}",
                      flush=True)
    for s in sorted(set(skipped)):
        print(f"skipped: {s}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"backend": f"torch {torch.__version__} {where}", "warmup": args.warmup,
             "steps": args.steps, "repeats": args.repeats, "results": results,
             "skipped": sorted(set(skipped))}, indent=2) + "\n")


if __name__ == "__main__":
    main()
