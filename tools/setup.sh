#!/usr/bin/env bash
# Installs everything fmnist needs from Debian's packages, then configures and builds it into
# ./build (or $FMNIST_BUILD_DIR). Used by the README's two commands and by CI; safe to rerun.
# FMNIST_BUILD_TARGETS: what to build (default all; the README's first command builds fmnist alone).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config git   # toolchain
  catch2                                 # Catch2 v2, the tests
  libcli11-dev nlohmann-json3-dev libfmt-dev zlib1g-dev libpng-dev libopenblas-dev
  dataset-fashion-mnist                  # the real data, in /usr/share/datasets/fashion-mnist
  libcairo2-dev fonts-dejavu-core        # the report's figures (fmnist reproduce)
  chromium                               # the report's browser check (tools/browser_check.sh)
  python3 python3-numpy python3-torch    # the PyTorch cross-checks (tools/torch_*.py), tools/*.py tests
  clang libclang-rt-14-dev               # the libFuzzer harnesses (tools/fuzz.sh)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build_dir="${FMNIST_BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release ${FMNIST_CMAKE_ARGS:-} >/dev/null
# shellcheck disable=SC2086  # a list of targets
cmake --build "$build_dir" -j"$(nproc)" --target ${FMNIST_BUILD_TARGETS:-all}
echo "setup: built $build_dir/fmnist"
