#!/usr/bin/env bash
# Every fmnist CUDA kernel (a __global__ function in cuda/*.cu) begins with grid_dependency(), and
# none is launched with <<<...>>>: all go through cuda/launch.cuh's launch(). With programmatic
# dependent launch on (FMNIST_PDL=1), a kernel that read its inputs before grid_dependency() could
# read them before the kernel writing them had finished; one launched with <<<...>>> would never
# overlap. The GPU tests compare results; this checks the rule itself, on any machine.
# Usage: kernel_launches_test.sh REPO [CUDA_DIR]   (CUDA_DIR: the sources to check, default REPO/cuda)
set -u
repo="$1"
dir="${2:-$repo/cuda}"
python3 - "$dir" <<'PY'
import glob, os, re, sys
failures, kernels = [], 0
files = sorted(glob.glob(os.path.join(sys.argv[1], "*.cu")))
if not files:
    sys.exit("kernel_launches_test: no .cu files in " + sys.argv[1])
for path in files:
    text = open(path).read()
    name = os.path.basename(path)
    for m in re.finditer(r"<<<", text):
        failures.append("%s:%d: a <<<...>>> launch (use launch(), cuda/launch.cuh)" % (name, text.count("\n", 0, m.start()) + 1))
    for m in re.finditer(r"__global__", text):
        kernels += 1
        body = text.index("{", m.end())
        first = text[body + 1:].lstrip()
        if not first.startswith("grid_dependency();"):
            line = text.count("\n", 0, m.start()) + 1
            failures.append("%s:%d: a kernel whose first statement is not grid_dependency();" % (name, line))
for f in failures:
    print("FAIL: " + f)
if kernels == 0:
    sys.exit("kernel_launches_test: no __global__ function found")
print("%d kernels in %d files checked, %d problems" % (kernels, len(files), len(failures)))
sys.exit(1 if failures else 0)
PY
