#!/usr/bin/env bash
# The fmnist command line as a user meets it: --help everywhere, and every bad flag, value, file
# or directory answered by one line naming the problem and exit code 2, with nothing overwritten.
# Usage: cli_test.sh FMNIST_BINARY SCRATCH_DIR
set -u
fmnist="$1"
tmp="$2/cli"
rm -rf "$tmp" && mkdir -p "$tmp"
failures=0 passes=0

# expect CODE PATTERN -- ARGS...: exit code CODE, stderr one line matching PATTERN.
expect() {
  local code="$1" pattern="$2"; shift 3
  "$fmnist" "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  local lines; lines=$(wc -l <"$tmp/err")
  if [ "$got" -ne "$code" ] || ! grep -qE -- "$pattern" "$tmp/err" || [ "$lines" -gt 1 ]; then
    echo "FAIL: fmnist $* -> exit $got (want $code), stderr ($lines lines):"; sed 's/^/    /' "$tmp/err"
    failures=$((failures + 1))
  else
    passes=$((passes + 1))
  fi
}
# expect_ok ARGS...: exit 0.
expect_ok() {
  if ! "$fmnist" "$@" >"$tmp/out" 2>"$tmp/err"; then
    echo "FAIL: fmnist $* should succeed:"; sed 's/^/    /' "$tmp/err"; failures=$((failures + 1))
  else
    passes=$((passes + 1))
  fi
}

for cmd in "" train eval info bench reproduce report; do
  expect_ok $cmd --help
  grep -q "Usage" "$tmp/out" || { echo "FAIL: fmnist $cmd --help prints no usage"; failures=$((failures + 1)); }
done
expect_ok --version

expect 2 "subcommand"                  -- 
expect 2 "unknown command .bogus."     -- bogus
expect 2 "--model.*(ae|classifier)|not in"   -- train --model bogus
expect 2 "--latent|out of range|range" -- train --latent 0
expect 2 "--epochs|range"              -- train --epochs -3
expect 2 "--batch-size|range"          -- train --batch-size 0
expect 2 "--device"                    -- train --device tpu
expect 2 "--lr|Could not convert|range" -- train --lr abc
expect 2 "--dropout|range"             -- train --dropout 1.5
expect 2 "--erase|range"               -- train --erase 1.5
expect 2 "--lr-schedule"               -- train --lr-schedule step
expect 2 "--augment-shift|range"       -- train --augment-shift 28
expect 2 "--nope|following argument"   -- train --nope
expect 2 "fine-tune.*init-from"        -- train --model classifier --fine-tune --data-dir "$tmp"
expect 2 "nowhere.*not found"          -- train --epochs 1 --data-dir "$tmp/nowhere" --out "$tmp/run"
expect 2 "missing data file"           -- train --epochs 1 --data-dir "$tmp" --out "$tmp/run"
expect 2 "--checkpoint.*required"      -- eval
expect 2 "missing.safetensors"         -- eval --checkpoint "$tmp/missing.safetensors"
printf 'not a checkpoint' >"$tmp/garbage.safetensors"
expect 2 "garbage.safetensors"         -- eval --checkpoint "$tmp/garbage.safetensors"
expect 2 "--split"                     -- eval --checkpoint "$tmp/garbage.safetensors" --split train
expect 2 "ae0x.*aeN"                  -- bench --models ae0x,c64

# A run directory that already holds checkpoints is not overwritten without --overwrite.
mkdir -p "$tmp/existing" && printf 'keep me' >"$tmp/existing/last.safetensors"
expect 2 "already exists"              -- train --epochs 1 --out "$tmp/existing"
[ "$(cat "$tmp/existing/last.safetensors")" = "keep me" ] || { echo "FAIL: existing checkpoint was touched"; failures=$((failures + 1)); }

# ---- robustness: bad output directories, a full disk, mixed-up data files, corrupt checkpoints ----
data="${FMNIST_DATA_DIR:-/usr/share/datasets/fashion-mnist}"
# A run as small as these checks allow: 2 steps, and 1,000 validation images (the most batch size
# asked below is 700), since validation is most of a short run's time (9,000 took 2.6 s a run
# under ASan, 1,000 0.3 s).
small=(--model ae --latent 16 --epochs 1 --max-steps-per-epoch 2 --validation-size 1000 --device cpu)
expect 2 "--checkpoint-every|range"    -- train --checkpoint-every -1
expect 2 "--keep-checkpoints|range"    -- train --keep-checkpoints -2
expect 2 "--guard-every|range"         -- train --guard-every 1000001
expect 2 "--eval-batch-size|range"     -- train --eval-batch-size -1
printf 'a file' >"$tmp/plain"
expect 2 "plain/run: cannot create the output directory: Not a directory" -- train "${small[@]}" --data-dir "$data" --out "$tmp/plain/run"
expect 2 "/proc/fmnist-run: cannot create the output directory" -- train "${small[@]}" --data-dir "$data" --out /proc/fmnist-run

# Image and label files mixed up: the message says which is which.
mkdir -p "$tmp/mixed"
for f in "$data"/*; do ln -sf "$f" "$tmp/mixed/"; done
rm -f "$tmp/mixed/train-images-idx3-ubyte.gz" "$tmp/mixed/train-images-idx3-ubyte"
ln -s "$data/train-labels-idx1-ubyte.gz" "$tmp/mixed/train-images-idx3-ubyte.gz"
expect 2 "train-images-idx3-ubyte.gz: .*this is an IDX label file, expected images" -- train "${small[@]}" --data-dir "$tmp/mixed" --out "$tmp/mixed-run"

# A good run, then its checkpoints damaged: refused by name, exit 2.
expect_ok train "${small[@]}" --data-dir "$data" --out "$tmp/good"
# A run directory with its config.json but no checkpoint yet (killed early): --resume starts it
# from scratch with the recorded configuration, and gets the same weights.
mkdir -p "$tmp/from-scratch" && cp "$tmp/good/config.json" "$tmp/from-scratch/"
expect_ok train --resume "$tmp/from-scratch" --device cpu --data-dir "$data"
cmp -s "$tmp/from-scratch/last.safetensors" "$tmp/good/last.safetensors" ||
  { echo "FAIL: a run resumed from its config.json alone differs from the original"; failures=$((failures + 1)); }
# Another validation batch trains the same weights; config.json records it.
expect_ok train "${small[@]}" --data-dir "$data" --eval-batch-size 450 --out "$tmp/eval-batch"
cmp -s "$tmp/eval-batch/last.safetensors" "$tmp/good/last.safetensors" ||
  { echo "FAIL: --eval-batch-size 450 changed the trained weights"; failures=$((failures + 1)); }
grep -q '"eval_batch": 450' "$tmp/eval-batch/config.json" ||
  { echo "FAIL: config.json does not record --eval-batch-size"; failures=$((failures + 1)); }
grep -qE '^time: [0-9.]+ s of training, [0-9.]+ s of validation \(1 epoch, validation batches of 450\)$' "$tmp/out" ||
  { echo "FAIL: fmnist train does not say where its time went:"; sed 's/^/    /' "$tmp/out"; failures=$((failures + 1)); }
cp "$tmp/good/last.safetensors" "$tmp/flipped.safetensors"
size=$(stat -c %s "$tmp/flipped.safetensors")
printf '\x7f' | dd of="$tmp/flipped.safetensors" bs=1 seek=$((size - 10)) conv=notrunc status=none
expect 2 "flipped.safetensors: checksum mismatch" -- eval --checkpoint "$tmp/flipped.safetensors" --device cpu --data-dir "$data"
head -c $((size - 100)) "$tmp/good/last.safetensors" >"$tmp/cut.safetensors"
expect 2 "cut.safetensors: truncated file" -- eval --checkpoint "$tmp/cut.safetensors" --device cpu --data-dir "$data"

# --resume: nothing there, flags that disagree with the run, a completed run.
expect 2 "nowhere: no such run directory"  -- train --resume "$tmp/nowhere"
expect 2 "plain: no such run directory"    -- train --resume "$tmp/plain"
mkdir -p "$tmp/not-a-run"
expect 2 "config.json: cannot open"        -- train --resume "$tmp/not-a-run"
expect 2 "--latent disagrees with the run being resumed: model.latent is 16 there but 32 here" -- train --resume "$tmp/good" --latent 32
expect 2 "--erase disagrees with the run being resumed: augment is false there but true here" -- train --resume "$tmp/good" --erase 0.5
expect_ok train --resume "$tmp/good" --device cpu --data-dir "$data" --latent 16 --guard-every 5 --eval-batch-size 700
grep -q "already complete" "$tmp/err" || { echo "FAIL: resuming a complete run does not say so"; failures=$((failures + 1)); }

# A full disk while writing a checkpoint (its temporary file leads to /dev/full): one line, exit
# 2, and the previous checkpoint is untouched. The run is made one epoch longer to have work to do.
sed -i 's/"epochs": 1,/"epochs": 2,/' "$tmp/good/config.json"
cp "$tmp/good/last.state.safetensors" "$tmp/state.before"
cp "$tmp/good/last.safetensors" "$tmp/last.before"
bash -c 'ln -s /dev/full "$1/last.state.safetensors.tmp-$$" && exec "$2" train --resume "$1" --device cpu --data-dir "$3"' \
  full "$tmp/good" "$fmnist" "$data" >"$tmp/out" 2>"$tmp/err"
got=$?
if [ "$got" -ne 2 ] || ! grep -q "last.state.safetensors: cannot write temporary file.*No space left on device" "$tmp/err" ||
   [ "$(grep -c 'fmnist: error' "$tmp/err")" -ne 1 ]; then
  echo "FAIL: a full disk -> exit $got:"; sed 's/^/    /' "$tmp/err"; failures=$((failures + 1))
else
  passes=$((passes + 1))
fi
cmp -s "$tmp/good/last.state.safetensors" "$tmp/state.before" && cmp -s "$tmp/good/last.safetensors" "$tmp/last.before" ||
  { echo "FAIL: the checkpoint before the full disk was changed"; failures=$((failures + 1)); }
expect_ok train --resume "$tmp/good" --device cpu --data-dir "$data"  # with room again
[ "$(grep -c '^2,' "$tmp/good/metrics.csv")" -eq 1 ] || { echo "FAIL: epoch 2 has no single metrics row"; failures=$((failures + 1)); }

# A corrupt training state is refused on --resume.
printf '\x01' | dd of="$tmp/good/last.state.safetensors" bs=1 seek=$(( $(stat -c %s "$tmp/good/last.state.safetensors") - 5 )) conv=notrunc status=none
sed -i 's/"epochs": 2,/"epochs": 3,/' "$tmp/good/config.json"
expect 2 "last.state.safetensors: checksum mismatch" -- train --resume "$tmp/good" --device cpu --data-dir "$data"

# ---- precision: --precision fp32|tf32|bf16 (models/precision.h), --tf32 its alias ----
expect 2 "--precision|not in"          -- train --precision fp16
expect 2 "--tf32 means --precision tf32, which contradicts --precision bf16" -- train --tf32 --precision bf16 --data-dir "$tmp"
expect 2 "--tf32 means --precision tf32, which contradicts --precision fp32" -- eval --checkpoint "$tmp/garbage.safetensors" --tf32 --precision fp32
expect 2 "--tf32 means --precision tf32, which contradicts --precision bf16" -- bench --tf32 --precision bf16 --models ae16 --steps 1 --repeats 1 --warmup 0
expect_ok train --tf32 --precision tf32 --help
# The CPU has no TF32: refused in one line, not run in FP32 under a TF32 label.
expect 2 "tf32 needs a GPU: the CPU backend has no TF32" -- train "${small[@]}" --data-dir "$data" --out "$tmp/tf32" --precision tf32
expect 2 "tf32 needs a GPU: the CPU backend has no TF32" -- bench --device cpu --tf32 --models ae16 --measure step --steps 1 --repeats 1 --warmup 0
# FMNIST_CONV_WGRAD picks the GPU's backward-filter; a wrong value stops any command in one line.
FMNIST_CONV_WGRAD=direct expect 2 "FMNIST_CONV_WGRAD must be cudnn or fmnist, got 'direct'" -- train "${small[@]}" --data-dir "$data" --out "$tmp/wgrad"
FMNIST_CONV_WGRAD=cudnn expect_ok bench --device cpu --models ae16 --measure step --steps 1 --repeats 1 --warmup 0
# --measure layers: each range of a step, in the table and under "layers" in the JSON.
expect_ok bench --device cpu --models ae16,c16 --measure layers --steps 2 --warmup 1 --json "$tmp/layers.json"
grep -q "backward / encoder.3 Conv2d backward" "$tmp/layers.json" && grep -q "encoder.3 Conv2d backward" "$tmp/out" ||
  { echo "FAIL: fmnist bench --measure layers names no layer"; failures=$((failures + 1)); }
expect 2 "'layer' is not step, epoch, sweep or layers" -- bench --device cpu --models ae16 --measure layer
FMNIST_CONV_FWD=yes expect 2 "FMNIST_CONV_FWD must be cudnn or fmnist, got 'yes'" -- bench --device cpu --models ae16 --measure step --steps 1 --repeats 1 --warmup 0
FMNIST_CONV_DGRAD=fast expect 2 "FMNIST_CONV_DGRAD must be cudnn or fmnist, got 'fast'" -- bench --device cpu --models ae16 --measure step --steps 1 --repeats 1 --warmup 0
FMNIST_LINEAR_FWD=cudnn expect 2 "FMNIST_LINEAR_FWD must be cublas or fmnist, got 'cudnn'" -- bench --device cpu --models ae16 --measure step --steps 1 --repeats 1 --warmup 0
FMNIST_LINEAR_DGRAD=yes expect 2 "FMNIST_LINEAR_DGRAD must be cublas or fmnist, got 'yes'" -- bench --device cpu --models ae16 --measure step --steps 1 --repeats 1 --warmup 0
FMNIST_LINEAR_WGRAD=1 expect 2 "FMNIST_LINEAR_WGRAD must be cublas or fmnist, got '1'" -- bench --device cpu --models ae16 --measure step --steps 1 --repeats 1 --warmup 0
FMNIST_LINEAR_FWD=cublas expect_ok bench --device cpu --models ae16 --measure step --steps 1 --repeats 1 --warmup 0
# FMNIST_BACKWARD_STREAMS (1 to 4) the same way.
FMNIST_BACKWARD_STREAMS=5 expect 2 "FMNIST_BACKWARD_STREAMS must be 1 to 4, got '5'" -- train "${small[@]}" --data-dir "$data" --out "$tmp/streams"
FMNIST_BACKWARD_STREAMS=2 expect_ok bench --device cpu --models ae16 --measure step --steps 1 --repeats 1 --warmup 0
FMNIST_PDL=yes expect 2 "FMNIST_PDL must be 0 or 1, got 'yes'" -- train "${small[@]}" --data-dir "$data" --out "$tmp/pdl"
FMNIST_PDL=1 expect_ok bench --device cpu --models ae16 --measure step --steps 1 --repeats 1 --warmup 0
# A GPU run records its convolution and Linear kernels in config.json (they set its bits); a resume keeps them
# and refuses a variable set to the other. A CPU run records none; here one stands in for a GPU run,
# its config.json given the record such a run writes.
expect_ok train "${small[@]}" --data-dir "$data" --out "$tmp/kernels"
! grep -q '"conv_kernels"\|"linear_kernels"' "$tmp/kernels/config.json" || { echo "FAIL: a CPU run records GPU kernels"; failures=$((failures + 1)); }
sed -i '1a\  "conv_kernels": {"forward": "cudnn", "backward_data": "cudnn", "backward_filter": "fmnist"}, "linear_kernels": {"forward": "fmnist", "backward_data": "cublas", "backward_filter": "cublas"},' "$tmp/kernels/config.json"
FMNIST_CONV_WGRAD=cudnn expect 2 "FMNIST_CONV_WGRAD=cudnn disagrees with the run being resumed: its convolution backward-filter is fmnist there \\($tmp/kernels/config.json\\)" -- train --resume "$tmp/kernels" --device cpu --data-dir "$data"
FMNIST_CONV_DGRAD=fmnist expect 2 "FMNIST_CONV_DGRAD=fmnist disagrees with the run being resumed: its convolution backward-data is cudnn there" -- train --resume "$tmp/kernels" --device cpu --data-dir "$data"
FMNIST_LINEAR_FWD=cublas expect 2 "FMNIST_LINEAR_FWD=cublas disagrees with the run being resumed: its Linear forward is fmnist there" -- train --resume "$tmp/kernels" --device cpu --data-dir "$data"
FMNIST_CONV_WGRAD=fmnist expect_ok train --resume "$tmp/kernels" --device cpu --data-dir "$data"
expect_ok train --resume "$tmp/kernels" --device cpu --data-dir "$data"
! grep -q "note: this run began on" "$tmp/err" || { echo "FAIL: a run resumed on its own backend is told it moved"; failures=$((failures + 1)); }
# A run resumed on another backend than it began on goes on, and says that its bits now follow the new one.
sed -i 's/"backend": "cpu"/"backend": "cuda:Some GPU"/' "$tmp/kernels/config.json"
expect_ok train --resume "$tmp/kernels" --device cpu --data-dir "$data"
grep -q "note: this run began on cuda:Some GPU and continues on cpu: from here on it rounds as cpu does" "$tmp/err" ||
  { echo "FAIL: a run resumed on another backend does not say so"; failures=$((failures + 1)); }
# A GPU run of an fmnist that recorded no kernels computed with cuDNN's: its resume keeps them, though
# a new run's default backward-filter is fmnist's.
expect_ok train "${small[@]}" --data-dir "$data" --out "$tmp/old-gpu"
sed -i 's/"backend": "cpu"/"backend": "cuda:Some GPU"/' "$tmp/old-gpu/config.json"
FMNIST_CONV_WGRAD=fmnist expect 2 "FMNIST_CONV_WGRAD=fmnist disagrees with the run being resumed: its convolution backward-filter is cudnn there" -- train --resume "$tmp/old-gpu" --device cpu --data-dir "$data"
# --lr-schedule takes config.json's spelling too: both give the same run.
expect_ok train "${small[@]}" --data-dir "$data" --out "$tmp/cosine-dash" --lr-schedule warmup-cosine
expect_ok train "${small[@]}" --data-dir "$data" --out "$tmp/cosine-underscore" --lr-schedule warmup_cosine
grep -q '"lr_schedule": "warmup_cosine"' "$tmp/cosine-underscore/config.json" &&
  cmp -s "$tmp/cosine-dash/last.safetensors" "$tmp/cosine-underscore/last.safetensors" ||
  { echo "FAIL: --lr-schedule warmup_cosine is not the run warmup-cosine gives"; failures=$((failures + 1)); }
# BF16 on the CPU: the run records it; a resume keeps it (and refuses another precision).
expect_ok train "${small[@]}" --data-dir "$data" --out "$tmp/bf16" --precision bf16
grep -q '"precision": "bf16"' "$tmp/bf16/config.json" || { echo "FAIL: config.json does not record precision bf16"; failures=$((failures + 1)); }
grep -q 'cpu (BF16)' "$tmp/err" || { echo "FAIL: a BF16 run does not say it runs on cpu (BF16)"; failures=$((failures + 1)); }
expect 2 "--precision disagrees with the run being resumed: precision is bf16 there but fp32 here" -- train --resume "$tmp/bf16" --precision fp32
expect 2 "--tf32 disagrees with the run being resumed: precision is bf16 there but tf32 here" -- train --resume "$tmp/bf16" --tf32
expect_ok train --resume "$tmp/bf16" --device cpu --data-dir "$data"
grep -q "already complete" "$tmp/err" || { echo "FAIL: resuming the complete BF16 run does not say so"; failures=$((failures + 1)); }
expect_ok eval --checkpoint "$tmp/bf16/last.safetensors" --device cpu --data-dir "$data" --precision bf16 --json
grep -q '"precision":"bf16"' "$tmp/out" || { echo "FAIL: eval --json does not record precision bf16"; failures=$((failures + 1)); }
expect_ok bench --device cpu --precision bf16 --models ae16 --measure step --steps 1 --repeats 1 --warmup 0 --json "$tmp/bench.json"
grep -q '^precision: bf16' "$tmp/out" && grep -q '"precision": "bf16"' "$tmp/bench.json" ||
  { echo "FAIL: fmnist bench does not report precision bf16"; failures=$((failures + 1)); }
grep -q '"precision": "fp32"' "$tmp/good/config.json" || { echo "FAIL: config.json does not record precision fp32"; failures=$((failures + 1)); }
# config.json records the software that computed the run: fmnist's version and, on the CPU, OpenBLAS's build.
grep -qE '"software": "fmnist [0-9]+\.[0-9]+\.[0-9]+; OpenBLAS [0-9]' "$tmp/good/config.json" ||
  { echo "FAIL: config.json does not record fmnist's and OpenBLAS's versions"; failures=$((failures + 1)); }

# ---- fmnist report OUT: the figures of a finished reproduction drawn again from its files ----
expect 2 "out is required|required"     -- report
expect 2 "--nope|following argument"    -- report "$tmp" --nope
if "$fmnist" info 2>/dev/null | grep -q '^report figures: drawn'; then
  expect 2 "nowhere: no such directory"  -- report "$tmp/nowhere"
  expect 2 "not-a-run/reproduce.json: cannot open" -- report "$tmp/not-a-run"
  # A small reproduction (AE(64), two steps): redrawn, its report.html and figures are the same bytes.
  expect_ok reproduce --only ae64 --epochs 1 --max-steps-per-epoch 2 --device cpu --data-dir "$data" --out "$tmp/repro"
  cp "$tmp/repro/report.html" "$tmp/report.before" && cp "$tmp/repro/figures/fig8.png" "$tmp/fig8.before" &&
    rm "$tmp/repro/report.html" "$tmp/repro/figures/fig8.png"
  expect_ok report "$tmp/repro" --data-dir "$data"
  cmp -s "$tmp/repro/report.html" "$tmp/report.before" && cmp -s "$tmp/repro/figures/fig8.png" "$tmp/fig8.before" ||
    { echo "FAIL: fmnist report does not redraw the reproduction's report byte for byte"; failures=$((failures + 1)); }
  # Malformed or missing files: one line naming the file, exit 2, and the report already there untouched.
  cp "$tmp/repro/results.json" "$tmp/results.good"
  printf '{"scale": ' >"$tmp/repro/results.json"
  expect 2 "repro/results.json: not valid JSON" -- report "$tmp/repro" --data-dir "$data"
  cp "$tmp/results.good" "$tmp/repro/results.json"
  sed -i 's/"kind": "autoencoder"/"kind": "gan"/' "$tmp/repro/results.json"
  expect 2 "repro/results.json: runs\[ae64\]\.kind: 'gan' is not" -- report "$tmp/repro" --data-dir "$data"
  cp "$tmp/results.good" "$tmp/repro/results.json"
  mv "$tmp/repro/figures.json" "$tmp/figures.good"
  expect 2 "repro/figures.json: cannot open" -- report "$tmp/repro" --data-dir "$data"
  mv "$tmp/figures.good" "$tmp/repro/figures.json"
  expect 2 "nowhere.*not found"          -- report "$tmp/repro" --data-dir "$tmp/nowhere"
  cmp -s "$tmp/repro/report.html" "$tmp/report.before" && cmp -s "$tmp/repro/figures/fig8.png" "$tmp/fig8.before" ||
    { echo "FAIL: a refused fmnist report changed the report already written"; failures=$((failures + 1)); }
else
  # A build without cairo: reproduce writes the results and a report without figures; report says it cannot draw.
  expect 2 "this build has no cairo"     -- report "$tmp/nowhere"
  expect_ok reproduce --only ae64 --epochs 1 --max-steps-per-epoch 2 --device cpu --data-dir "$data" --out "$tmp/repro"
  grep -q "Not drawn: this build of fmnist has no cairo" "$tmp/repro/report.html" && [ -s "$tmp/repro/figures.json" ] &&
    [ ! -e "$tmp/repro/figures" ] && grep -q "fmnist report $tmp/repro" "$tmp/out" ||
    { echo "FAIL: a reproduction without cairo does not write its report without figures and say how to draw them"; failures=$((failures + 1)); }
  expect 2 "this build has no cairo"     -- report "$tmp/repro"
fi

# Without a GPU, --device cuda is refused in one line (this suite runs where there is none).
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  expect 1 "--device cuda"             -- bench --device cuda --models ae64 --steps 1 --repeats 1 --warmup 0
fi

# The CUDA backend is a module loaded on first use (host/cuda_backend.h), where this build has one
# beside fmnist (not in the emulated build): a command on the CPU never loads cuBLAS, `fmnist info`
# does, and a module that cannot be loaded is named in one line (--device auto then runs on the CPU).
if [ -e "$(dirname "$fmnist")/libfmnist_cuda.so" ]; then
  LD_DEBUG=libs "$fmnist" bench --device cpu --models ae16 --measure step --steps 1 --repeats 1 --warmup 0 >"$tmp/out" 2>"$tmp/err" &&
    ! grep -q "libcublas" "$tmp/err" && passes=$((passes + 1)) ||
    { echo "FAIL: a CPU bench loads cuBLAS (or fails):"; grep -m3 "libcublas\|error" "$tmp/err" | sed 's/^/    /'; failures=$((failures + 1)); }
  LD_DEBUG=libs "$fmnist" info >"$tmp/out" 2>"$tmp/err" && grep -q "libcublas" "$tmp/err" &&
    grep -qE '^CUDA backend: compiled in; CUDA runtime [0-9]+\.[0-9]+, .*cuDNN [0-9]+\.[0-9]+' "$tmp/out" && passes=$((passes + 1)) ||
    { echo "FAIL: fmnist info does not load the CUDA module:"; sed 's/^/    /' "$tmp/out"; failures=$((failures + 1)); }
  FMNIST_CUDA_MODULE="$tmp/nowhere.so" expect 1 "^fmnist: error: --device cuda: the CUDA backend is not loaded: .*nowhere.so: cannot open shared object file" -- bench --device cuda --models ae16 --steps 1 --repeats 1 --warmup 0
  FMNIST_CUDA_MODULE=/lib/x86_64-linux-gnu/libz.so.1 expect 1 "the CUDA backend is not loaded: /lib/x86_64-linux-gnu/libz.so.1 has no symbol fmnist_cuda_backend" -- bench --device cuda --models ae16 --steps 1 --repeats 1 --warmup 0
  FMNIST_CUDA_MODULE="$tmp/nowhere.so" expect_ok train --model ae --latent 16 --epochs 1 --max-steps-per-epoch 2 --validation-size 1000 --device auto --data-dir "$data" --out "$tmp/auto-without-module"
  grep -q "CUDA backend not loaded: .*nowhere.so.*; running on the CPU backend" "$tmp/out" "$tmp/err" ||
    { echo "FAIL: --device auto without its CUDA module does not say why it runs on the CPU"; failures=$((failures + 1)); }
  FMNIST_CUDA_MODULE="$tmp/nowhere.so" "$fmnist" info >"$tmp/out" 2>&1 && grep -q "^CUDA backend: not loaded: .*nowhere.so" "$tmp/out" ||
    { echo "FAIL: fmnist info does not name the CUDA module it cannot load:"; sed 's/^/    /' "$tmp/out"; failures=$((failures + 1)); }
fi

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
