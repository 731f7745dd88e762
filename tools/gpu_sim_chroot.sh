#!/usr/bin/env bash
# A dry run of tools/gpu_check.sh without a GPU, on a machine as bare as the device's 'cuda' image is
# of Debian's -dev packages: a Debian 12 chroot (debootstrap --variant=minbase) holding ONLY
# build-essential, cmake, ninja-build and python3, with this machine's /usr/local/cuda bound in
# read-only. The tree that a device call would send (tracked + untracked-not-ignored files) and .gpu
# (tools/gpu_bundle.sh) are copied in, and gpu_check.sh runs there: deps, configure, build and the
# CPU tests must pass from the bundle alone; the GPU steps report NODEV/FAIL (no device).
# Needs root, debootstrap and network for the first run (the chroot is kept and reused).
#
# Usage: tools/gpu_sim_chroot.sh [CHROOT]   (default /tmp/gpu-sim)
# Environment: FMNIST_SIM_MIRROR (default: the first deb.debian.org-style URI apt uses here),
#   FMNIST_SIM_BUDGET (seconds, default 5400), FMNIST_SIM_STEP_SCALE (default 10),
#   FMNIST_SIM_KEEP_BUILD=1 (reuse the chroot's last build); logs in
#   CHROOT/work/logs (summary.txt last).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="${1:-/tmp/gpu-sim}"
cuda="$(readlink -f /usr/local/cuda)"
[ "$(id -u)" -eq 0 ] || { echo "gpu_sim_chroot: needs root (chroot, mount)" >&2; exit 1; }
[ -d "$repo/.gpu/debs" ] || { echo "gpu_sim_chroot: run tools/gpu_bundle.sh first" >&2; exit 1; }
[ -x "$cuda/bin/nvcc" ] || { echo "gpu_sim_chroot: no CUDA toolkit at /usr/local/cuda" >&2; exit 1; }

if [ ! -x "$root/usr/bin/cmake" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
  mirror="${FMNIST_SIM_MIRROR:-$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    awk '{ print $2 }' | head -1)}"
  mirror="${mirror:-http://deb.debian.org/debian}"
  echo "gpu_sim_chroot: debootstrap bookworm from $mirror into $root"
  debootstrap --variant=minbase bookworm "$root" "$mirror"
  cp /etc/resolv.conf "$root/etc/"
  chroot "$root" bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential cmake ninja-build python3'
fi

mounts=()
# shellcheck disable=SC2317  # called by the trap
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" 2>/dev/null || umount -l "${mounts[$i]}"; done
}
trap cleanup EXIT
bind() {  # bind SRC DST [ro]
  mkdir -p "$2"
  mountpoint -q "$2" && return 0
  mount --bind "$1" "$2"
  mounts+=("$2")
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"
  return 0
}
bind /proc "$root/proc"
bind /dev "$root/dev"
bind "$cuda" "$root$cuda" ro
ln -sfn "$cuda" "$root/usr/local/cuda"

work="$root/work"
# FMNIST_SIM_KEEP_BUILD=1 keeps the chroot's last build-gpu-check (a quicker rerun).
rm -rf "$work/logs" "$work/build-kept"
[ "${FMNIST_SIM_KEEP_BUILD:-0}" = 1 ] && [ -d "$work/fmnist/build-gpu-check" ] && mv "$work/fmnist/build-gpu-check" "$work/build-kept"
rm -rf "$work/fmnist"
mkdir -p "$work/fmnist" "$work/logs"
[ -d "$work/build-kept" ] && mv "$work/build-kept" "$work/fmnist/build-gpu-check"
# shellcheck disable=SC2016  # sh -c expands them
(cd "$repo" && { git ls-files -z --cached; git ls-files -z --others --exclude-standard; } |
  xargs -0 -r sh -c 'for f; do if [ -e "$f" ]; then printf "%s\0" "$f"; fi; done' sh |
  tar --null -T - -cf -) | tar -xf - -C "$work/fmnist"
cp -a "$repo/.gpu" "$work/fmnist/"
echo "gpu_sim_chroot: $(du -sh "$work/fmnist" | cut -f1) copied; running tools/gpu_check.sh in the chroot"
t0=$(date +%s)
set +e
chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  FMNIST_GPU_CHECK_BUDGET="${FMNIST_SIM_BUDGET:-5400}" FMNIST_GPU_CHECK_STEP_SCALE="${FMNIST_SIM_STEP_SCALE:-10}" \
  FMNIST_GPU_CHECK_PACK_LOGS=0 bash /work/fmnist/tools/gpu_check.sh /work/fmnist/.gpu/data /work/logs
rc=$?
echo "gpu_sim_chroot: gpu_check.sh exited $rc after $(($(date +%s) - t0)) s; logs in $work/logs"
exit "$rc"
