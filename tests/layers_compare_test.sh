#!/usr/bin/env bash
# tools/layers_compare.py, gpu_check's layer-by-layer table of two `fmnist bench --measure layers`
# runs, on made-up JSON: each range's two medians, their ratio and the faster run (within 2 %: "="),
# a range one run lacks, and one-line refusals of a missing file, a file that is not JSON and one
# without layers.
# Usage: layers_compare_test.sh REPO
set -u
script="$1/tools/layers_compare.py"
# shellcheck source=script_test_support.sh
. "$(dirname "$0")/script_test_support.sh"
cat >"$tmp/a.json" <<'JSON'
{"layers": [{"model": "AE(256)", "batch": 100, "median_step_us": 300.0, "ranges": [
  {"path": "forward", "depth": 0, "median_us": 100.0},
  {"path": "forward / encoder.0 Conv2d", "depth": 1, "median_us": 40.0},
  {"path": "backward", "depth": 0, "median_us": 150.0},
  {"path": "backward / encoder.3 Conv2d backward", "depth": 1, "median_us": 60.0}]},
 {"model": "C(256)", "batch": 100, "median_step_us": 200.0, "ranges": []}]}
JSON
cat >"$tmp/b.json" <<'JSON'
{"layers": [{"model": "AE(256)", "batch": 100, "median_step_us": 240.0, "ranges": [
  {"path": "forward", "depth": 0, "median_us": 101.0},
  {"path": "forward / encoder.0 Conv2d", "depth": 1, "median_us": 30.0},
  {"path": "backward", "depth": 0, "median_us": 165.0},
  {"path": "backward / MaxPool2d backward", "depth": 1, "median_us": 5.0}]}]}
JSON
out="$(python3 "$script" "$tmp/a.json" "$tmp/b.json" --names cudnn,direct)" || fail "exit $?"
expect() {  # expect REGEX: a line of the output matches
  grep -qE -- "$1" <<<"$out" || fail "no line matching '$1' in:"$'\n'"$out"
}
expect '^AE\(256\) batch 100: direct against cudnn, median us$'
expect '^  step \(ranges timed\) +300\.0 +240\.0 +0\.80  direct$'
expect '^  forward +100\.0 +101\.0 +1\.01  =$'
expect '^    encoder\.0 Conv2d +40\.0 +30\.0 +0\.75  direct$'
expect '^  backward +150\.0 +165\.0 +1\.10  cudnn$'
expect '^    encoder\.3 Conv2d backward +60\.0 +- +- +$'
expect '^    MaxPool2d backward +- +5\.0 +- +$'
grep -q 'C(256)' <<<"$out" && fail "C(256), in one file only, is listed"
# One-line refusals, exit status 1.
check_refusal() {  # check_refusal REGEX FILE...
  local pattern="$1" err
  shift
  err="$(python3 "$script" "$@" 2>&1 >/dev/null)"
  local status=$?
  [ "$status" -eq 1 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -qE -- "$pattern" <<<"$err" ||
    fail "refusal '$pattern': exit $status, '$err'"
}
check_refusal 'missing.json: No such file' "$tmp/missing.json" "$tmp/b.json"
echo 'not json' >"$tmp/bad.json"
check_refusal 'bad.json: not JSON' "$tmp/a.json" "$tmp/bad.json"
echo '{"results": []}' >"$tmp/none.json"
check_refusal 'none.json: no "layers"' "$tmp/none.json" "$tmp/b.json"
python3 "$script" "$tmp/a.json" "$tmp/b.json" --names one >/dev/null 2>&1; [ $? -eq 2 ] || fail "--names one did not exit 2"
finish layers_compare
