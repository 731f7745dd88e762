#!/usr/bin/env bash
# tools/bench_variants.py, gpu_check's choice of what its measurements run with, on made-up bench
# JSON files: bench-combo takes the single options that beat the defaults by 1 %, when at least two
# and not all of them; the fast-path choice takes the fastest variant (the combo's included) only
# when 3 % over the defaults, writes its environment, and leaves no file otherwise.
# Usage: bench_variants_test.sh REPO
set -u
script="$1/tools/bench_variants.py"
# shellcheck source=script_test_support.sh
. "$(dirname "$0")/script_test_support.sh"
rate() {  # rate FILE IMAGES_PER_SECOND: an fmnist bench JSON with one AE(256) batch-100 row (and a C(256) one)
  printf '{"results":[{"model":"C(256)","batch":100,"median_images_per_second":1},{"model":"AE(256)","batch":100,"median_images_per_second":%s}]}\n' \
    "$2" >"$tmp/$1"
}
variants=("bench-wgrad FMNIST_CONV_WGRAD=fmnist" "bench-dgrad FMNIST_CONV_DGRAD=fmnist" "bench-fwd FMNIST_CONV_FWD=fmnist"
  "bench-streams FMNIST_BACKWARD_STREAMS=2"
  "bench-fast FMNIST_CONV_WGRAD=fmnist FMNIST_CONV_DGRAD=fmnist FMNIST_CONV_FWD=fmnist FMNIST_BACKWARD_STREAMS=2")

# Two single options win (wgrad, streams; fwd by under 1 %, dgrad loses): the combo is those two.
rate bench-fmnist.json 100000; rate bench-fmnist-wgrad.json 250000; rate bench-fmnist-dgrad.json 99000
rate bench-fmnist-fwd.json 100900; rate bench-fmnist-streams.json 110000; rate bench-fmnist-fast.json 240000
got="$(python3 "$script" combo "$tmp" "${variants[@]}")"
[ "$got" = "FMNIST_CONV_WGRAD=fmnist FMNIST_BACKWARD_STREAMS=2" ] || fail "combo of wgrad and streams: '$got'"
# The combo measured fastest: chosen, its environment written.
echo "$got" >"$tmp/bench-combo.env"; rate bench-fmnist-combo.json 300000
out="$(python3 "$script" choose "$tmp" "$tmp/fast.env" "${variants[@]}")"
grep -q '^fast path: FMNIST_CONV_WGRAD=fmnist FMNIST_BACKWARD_STREAMS=2 (AE(256) b100 300000 img/s, 3.00x' <<<"$out" ||
  fail "choice of the combo: $out"
[ "$(cat "$tmp/fast.env" 2>/dev/null)" = $'export FMNIST_CONV_WGRAD=fmnist\nexport FMNIST_BACKWARD_STREAMS=2' ] ||
  fail "the combo's environment file: $(cat "$tmp/fast.env" 2>/dev/null)"
# Without the combo, the fastest single variant (wgrad) wins over bench-fast.
rm "$tmp/bench-combo.env" "$tmp/bench-fmnist-combo.json"
python3 "$script" choose "$tmp" "$tmp/fast.env" "${variants[@]}" >/dev/null
[ "$(cat "$tmp/fast.env" 2>/dev/null)" = "export FMNIST_CONV_WGRAD=fmnist" ] || fail "wgrad not chosen"
# Every single option wins: that is bench-fast's set, so no combo is run.
rate bench-fmnist-dgrad.json 120000; rate bench-fmnist-fwd.json 120000
[ -z "$(python3 "$script" combo "$tmp" "${variants[@]}")" ] || fail "a combo equal to bench-fast"
# One winner only: no combo.
rate bench-fmnist-dgrad.json 90000; rate bench-fmnist-fwd.json 90000; rate bench-fmnist-streams.json 90000
[ -z "$(python3 "$script" combo "$tmp" "${variants[@]}")" ] || fail "a combo of one option"
# Nothing 3 % faster: the defaults, and the old environment file is gone.
for v in wgrad dgrad fwd streams fast; do rate "bench-fmnist-$v.json" 102000; done
out="$(python3 "$script" choose "$tmp" "$tmp/fast.env" "${variants[@]}")"
grep -q '^fast path: the defaults (100000 img/s; no variant 3% faster)' <<<"$out" || fail "under 3 %: $out"
[ ! -e "$tmp/fast.env" ] || fail "an environment file is left when the defaults win"
# No bench of the defaults (a missing or unreadable file): the defaults, nothing written.
echo 'not json' >"$tmp/bench-fmnist.json"
out="$(python3 "$script" choose "$tmp" "$tmp/fast.env" "${variants[@]}")"
grep -q '^fast path: the defaults (no bench of them' <<<"$out" && [ ! -e "$tmp/fast.env" ] || fail "no defaults: $out"
# A wrong call: usage, exit 2.
python3 "$script" nonsense >/dev/null 2>&1; [ $? -eq 2 ] || fail "a wrong subcommand did not exit 2"
finish bench_variants
