#!/usr/bin/env bash
# Fills .gpu/ (git-ignored) with what tools/gpu_check.sh needs on a GPU machine that has no network
# and none of Debian's -dev packages: run it HERE (a Debian 12 machine with apt), then carry .gpu
# in the two device calls that the header of tools/gpu_check.sh spells out (call 1 with
# carry=[".gpu"], timeout_s=360; call 2 at once, on the still-warm machine).
#
#   .gpu/data/     the four Fashion-MNIST IDX .gz files (from /usr/share/datasets/fashion-mnist)
#   .gpu/debs/     Debian 12 .deb files (`apt-get download`, nothing installed) of every library and
#                  header the GPU build needs, with their library dependencies; gpu_check.sh unpacks
#                  them into a private prefix with dpkg-deb -x. Left out: glibc, libstdc++ and libgcc
#                  (and what libc6-dev pulls in), which must come from the machine's own toolchain.
#                  Not bundled: cairo and libpng (the report, whose -dev closure is large): the GPU
#                  build is configured with -DFMNIST_REPORT=OFF when cairo is missing there.
#   .gpu/MANIFEST.txt  package, version, size; the newest glibc symbol version the libraries need
#
# The carried tree (tracked + untracked-not-ignored files + .gpu) must stay under the device's
# 64 MiB: the script prints the total and fails above FMNIST_BUNDLE_MAX_MIB (default 60).
# Environment: FMNIST_BUNDLE_DATA (default /usr/share/datasets/fashion-mnist).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bundle="$repo/.gpu"
data_src="${FMNIST_BUNDLE_DATA:-/usr/share/datasets/fashion-mnist}"
max_mib="${FMNIST_BUNDLE_MAX_MIB:-60}"

# What the GPU build (CUDA on, report off) compiles and links against, from Debian 12:
roots=(
  catch2             # Catch2 v2 (header-only), the tests
  libcli11-dev       # CLI11 (header-only)
  nlohmann-json3-dev # nlohmann/json (header-only)
  libfmt-dev         # fmt: used header-only there (FMNIST_FMT_HEADER_ONLY); its CMake config wants libfmt9
  zlib1g-dev         # gzip'd IDX files
  libopenblas-dev    # the CPU reference backend's GEMMs (pulls the pthread variant, libgfortran5)
  pkgconf            # pkg-config, which CMake needs to find OpenBLAS
)
# The machine's own C/C++ toolchain provides these (and everything they pull in): never bundled.
baseline=(libc6-dev libstdc++6 libgcc-s1)

command -v apt-get >/dev/null || { echo "gpu_bundle: needs apt-get (run it on the Debian 12 dev machine)" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "gpu_bundle: needs dpkg-deb" >&2; exit 1; }

# ---- data -----------------------------------------------------------------------------------------
mkdir -p "$bundle/data" "$bundle/debs"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [ ! -f "$data_src/$f.gz" ]; then
    echo "gpu_bundle: $data_src/$f.gz missing (install dataset-fashion-mnist: tools/setup.sh)" >&2
    exit 1
  fi
  cmp -s "$data_src/$f.gz" "$bundle/data/$f.gz" 2>/dev/null || cp "$data_src/$f.gz" "$bundle/data/"
done

# ---- the packages: closure(roots) - closure(baseline), as apt resolves them on an empty system ----
empty_status="$(mktemp)"
trap 'rm -f "$empty_status"' EXIT
resolve() {
  apt-get -s -o Dir::State::status="$empty_status" -o Debug::NoLocking=1 install --no-install-recommends "$@" |
    awk '$1 == "Inst" { print $2 }' | sort -u
}
mapfile -t wanted < <(comm -23 <(resolve "${roots[@]}") <(resolve "${baseline[@]}"))
[ ${#wanted[@]} -gt 0 ] || { echo "gpu_bundle: apt resolved no packages (apt-get update?)" >&2; exit 1; }

rm -f "$bundle/debs/"*.deb
download() { (cd "$bundle/debs" && apt-get download -qq "${wanted[@]}"); }
if ! download 2>/dev/null; then
  echo "gpu_bundle: apt-get download failed; updating the package lists and retrying"
  apt-get update -qq
  download
fi

# ---- manifest: versions, sizes, and the newest GLIBC_x.y any bundled ELF file asks for ----------
unpacked="$(mktemp -d)"
trap 'rm -f "$empty_status"; rm -rf "$unpacked"' EXIT
for deb in "$bundle/debs/"*.deb; do dpkg-deb -x "$deb" "$unpacked"; done
glibc_needed="$(find "$unpacked" -type f \( -name '*.so*' -o -path '*/bin/*' \) -print0 |
  xargs -0 grep -aoh 'GLIBC_2\.[0-9][0-9]*' 2>/dev/null | sort -uV | tail -1)"
{
  # shellcheck disable=SC1091
  echo "# tools/gpu_bundle.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), on $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "roots: ${roots[*]}"
  echo "left to the machine: closure of ${baseline[*]}"
  echo "glibc needed: ${glibc_needed:-none} (newest GLIBC_ symbol version in the bundled libraries and programs)"
  echo "data: $(cd "$bundle/data" && echo *)"
  for deb in "$bundle/debs/"*.deb; do
    printf '%-28s %-24s %9s\n' "$(dpkg-deb -f "$deb" Package)" "$(dpkg-deb -f "$deb" Version)" "$(stat -c %s "$deb")"
  done
} >"$bundle/MANIFEST.txt"
cat "$bundle/MANIFEST.txt"

# ---- sizes ------------------------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
bytes_of() { du -sb "$1" | cut -f1; }
tree_bytes="$( (git ls-files -z --cached; git ls-files -z --others --exclude-standard) |
  xargs -0 -r stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')"
data_bytes="$(bytes_of "$bundle/data")"
debs_bytes="$(bytes_of "$bundle/debs")"
total_bytes="$(bytes_of "$bundle")"
total=$((tree_bytes + total_bytes))
echo
echo "gpu_bundle: data $(mib "$data_bytes"), ${#wanted[@]} debs $(mib "$debs_bytes"), .gpu $(mib "$total_bytes")"
echo "gpu_bundle: working tree that travels $(mib "$tree_bytes"); with .gpu carried: $(mib "$total") (limit 64 MiB)"
if [ "$total" -gt $((max_mib * 1048576)) ]; then
  echo "gpu_bundle: over ${max_mib} MiB: the device call would be refused or too close to its limit" >&2
  exit 1
fi
echo 'gpu_bundle: next: the two device calls in the header of tools/gpu_check.sh (call 1 with carry=[".gpu"], timeout_s=360; call 2 at once)'
