#!/usr/bin/env bash
# deploy/debian-root.sh ARCH TARBALL [PACKAGE...] — a Debian 12 (bookworm) root for ARCH, made by
# debootstrap's minbase variant plus PACKAGEs, kept as TARBALL (a cache: nothing is done when it
# exists). A foreign ARCH (arm64, armhf on this amd64 machine) is made with `debootstrap --foreign`
# and its second stage runs under qemu-user-static. Needs root. Environment:
#   RELAYBOX_DEBIAN_MIRROR   default http://deb.debian.org/debian
set -euo pipefail
arch=${1:?usage: debian-root.sh ARCH TARBALL [PACKAGE...]}
tarball=${2:?usage: debian-root.sh ARCH TARBALL [PACKAGE...]}
shift 2
[ -s "$tarball" ] && exit 0
here=$(cd "$(dirname "$0")" && pwd)
mirror=${RELAYBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}
command -v debootstrap >/dev/null || { echo "debian-root: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "debian-root: needs root (debootstrap, chroot)" >&2; exit 1; }

mkdir -p "$(dirname "$tarball")"
work=$(mktemp -d "$(dirname "$tarball")/.build-XXXXXX")
unmount_all() {
  # Anything debootstrap left mounted inside the root, deepest first, before deleting it.
  awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
}
trap 'unmount_all; rm -rf "$work"' EXIT
root=$work/root
include=$(IFS=,; echo "$*")
opts=(--variant=minbase --components=main,non-free-firmware ${include:+--include=$include})
if [ "$arch" = "$(dpkg --print-architecture)" ]; then
  debootstrap "${opts[@]}" bookworm "$root" "$mirror" >"$work/log" 2>&1 || { tail -20 "$work/log" >&2; exit 1; }
else
  "$here/binfmt.sh" "$arch"
  debootstrap --foreign --arch="$arch" "${opts[@]}" bookworm "$root" "$mirror" >"$work/log" 2>&1 || { tail -20 "$work/log" >&2; exit 1; }
  chroot "$root" /debootstrap/debootstrap --second-stage >>"$work/log" 2>&1 || { tail -20 "$work/log" "$root/debootstrap/debootstrap.log" >&2; exit 1; }
fi
unmount_all
# apt's caches are a third of a minbase root and nothing reads them.
find "$root/var/cache/apt/archives" "$root/var/lib/apt/lists" -type f -delete
tar -C "$root" --numeric-owner -cf "$tarball.part" .
mv "$tarball.part" "$tarball"
