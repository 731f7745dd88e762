# Sourced by the shell tests of tools/ scripts: a temporary directory $tmp removed on exit,
# fail MESSAGE (prints and counts a failure), finish NAME (says all passed, or exits 1).
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
finish() {
  [ "$failures" -eq 0 ] && echo "$1: all checks passed"
  exit $((failures > 0))
}
