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

for cmd in "" train eval info bench; do
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

# Without a GPU, --device cuda is refused in one line (this suite runs where there is none).
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  expect 1 "--device cuda"             -- bench --device cuda --models ae64 --steps 1 --repeats 1 --warmup 0
fi

echo "$passes passed, $failures failed"
[ "$failures" -eq 0 ]
