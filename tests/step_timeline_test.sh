#!/usr/bin/env bash
# tools/step_timeline.py on a small Nsight Systems kernel trace (tests/data/nsys_gpu_trace.csv: two
# training steps on two streams, one evaluation step, a copy row and nsys's note line), whose figures
# were worked out by hand: a step's span, the union of its kernels, the idle rest, the gap to the
# next step, the kernels of the median step. Then its one-line refusals. Usage: step_timeline_test.sh REPO
set -u
repo="$1"
script="$repo/tools/step_timeline.py"
failures=0
check() {  # check DESCRIPTION EXPECTED-LINE OUTPUT
  if ! grep -qxF -- "$2" <<<"$3"; then
    echo "FAIL: $1: no line '$2' in:"; sed 's/^/    /' <<<"$3"; failures=$((failures + 1))
  fi
}
out="$(python3 "$script" "$repo/tests/data/nsys_gpu_trace.csv" 2>&1)" || { echo "FAIL: exit $?: $out"; exit 1; }
check "training steps" "training steps: 2; median span 43.0 us, busy 38.0 us, idle 5.0 us (12 %), between steps 57.0 us; 5 kernels on 2 stream(s)" "$out"
check "evaluation steps" "evaluation steps: 1; median span 13.0 us, busy 12.0 us, idle 1.0 us (8 %), between steps n/a; 2 kernels on 1 stream(s)" "$out"
check "second stream" "stream 8: busy 18.0 us of the step's 43.0" "$out"
check "a kernel of the step" "      12.0    18.0  stream 8    void fmnist::cuda::<unnamed>::direct_weight_grad_kernel<3>" "$out"
# The copy row is no kernel, and the step table lists the five kernels only.
[ "$(grep -c '^ \+[0-9.]\+ \+[0-9.]\+  stream' <<<"$out")" -eq 5 ] || { echo "FAIL: not 5 kernel rows"; failures=$((failures + 1)); }
# Refusals: one line, non-zero exit.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf 'a,b\n1,2\n' >"$tmp/other.csv"
for bad in "$tmp/missing.csv" "$tmp/other.csv"; do
  msg="$(python3 "$script" "$bad" 2>&1)"
  rc=$?
  if [ "$rc" -eq 0 ] || [ "$(wc -l <<<"$msg")" -ne 1 ] || [[ "$msg" != step_timeline:* ]]; then
    echo "FAIL: $bad -> exit $rc: $msg"; failures=$((failures + 1))
  fi
done
grep -v advance_cursor "$repo/tests/data/nsys_gpu_trace.csv" >"$tmp/no-steps.csv"
msg="$(python3 "$script" "$tmp/no-steps.csv" 2>&1)" && { echo "FAIL: a trace without steps passed"; failures=$((failures + 1)); }
[[ "$msg" == *"no advance_cursor kernel"* ]] || { echo "FAIL: no-steps message: $msg"; failures=$((failures + 1)); }
[ "$failures" -eq 0 ] && echo "step_timeline: all checks passed"
exit $((failures > 0))
