#!/usr/bin/env bash
# Renders an `fmnist reproduce` report in headless Chromium (Debian's `chromium`) and checks that
# every figure loaded: the report's inline script, run on window.onload, counts the <img> elements
# that are complete with a natural width > 0 and writes "figures-loaded N/M" into #figures-status;
# this reads it back with --dump-dom and requires N = M = the number of <img> tags in the file
# (and at least --min-figures). Keeps a screenshot of the whole page beside the report (1400 wide,
# at least 5000 tall).
#
# usage: tools/browser_check.sh REPORT.html [--min-figures N] [--screenshot PATH]
# Exit 0 when every figure loaded; 1 otherwise, including when chromium is missing (never a skip).
set -euo pipefail

fail() { echo "browser_check: FAIL: $*" >&2; exit 1; }
# chromium's own log, less the D-Bus complaints of a machine without a session bus
show_log() { grep -v -e 'dbus/' "$log" | tail -n 20 >&2 || true; }

[ $# -ge 1 ] || { echo "usage: $0 REPORT.html [--min-figures N] [--screenshot PATH]" >&2; exit 2; }
report="$1"
shift
min_figures=1
screenshot=""
while [ $# -gt 0 ]; do
  case "$1" in
    --min-figures) min_figures="$2"; shift 2 ;;
    --screenshot) screenshot="$2"; shift 2 ;;
    *) echo "browser_check: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f "$report" ] || fail "$report: no such file"
report_abs="$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
[ -n "$screenshot" ] || screenshot="$(dirname "$report_abs")/report-screenshot.png"

chromium=""
for c in chromium chromium-browser; do
  if command -v "$c" >/dev/null 2>&1; then chromium="$(command -v "$c")"; break; fi
done
[ -n "$chromium" ] || fail "chromium not found: install Debian's chromium (tools/setup.sh does)"

profile="$(mktemp -d)"
log="$(mktemp)"
trap 'rm -rf "$profile" "$log"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --disable-dev-shm-usage --user-data-dir="$profile")

expected="$(grep -o '<img ' "$report_abs" | wc -l)"
[ "$expected" -ge "$min_figures" ] || fail "$report: $expected <img> elements, expected at least $min_figures"

dom="$(timeout 300 "$chromium" "${flags[@]}" --dump-dom "file://$report_abs" 2>"$log")" ||
  { show_log; fail "chromium --dump-dom did not finish"; }
status="$(grep -o 'id="figures-status"[^>]*>[^<]*' <<<"$dom" | head -n 1 | sed 's/.*>//' || true)"
[ -n "$status" ] || { show_log; fail "no #figures-status in the rendered page"; }
echo "browser_check: $status ($expected <img> tags in $report)"
[ "$status" = "figures-loaded $expected/$expected" ] || fail "not every figure loaded: '$status'"

# The whole page: at least 1400x5000, taller when the page is (its height as the script measured it).
page_height="$(grep -o 'data-page-height="[0-9]*"' <<<"$dom" | head -n 1 | tr -dc '0-9' || true)"
height=5000
if [ -n "$page_height" ] && [ "$page_height" -gt 5000 ]; then height=$((page_height + 40)); fi
[ "$height" -le 16000 ] || height=16000
rm -f "$screenshot"
timeout 300 "$chromium" "${flags[@]}" --hide-scrollbars --window-size=1400,"$height" \
  --screenshot="$screenshot" "file://$report_abs" >"$log" 2>&1 ||
  { show_log; fail "chromium --screenshot did not finish"; }
[ -s "$screenshot" ] || fail "no screenshot written to $screenshot"
[ "$(head -c 8 "$screenshot" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] ||
  fail "$screenshot is not a PNG"
echo "browser_check: screenshot $screenshot (1400x$height)"
echo "browser_check: OK"
