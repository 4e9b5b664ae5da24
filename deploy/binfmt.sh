#!/bin/sh
# deploy/binfmt.sh ARCH... — lets this amd64 machine run arm64 (aarch64) and armhf (arm) programs,
# in a chroot too: registers Debian's qemu-user-static with the kernel's binfmt_misc. Idempotent.
# The "F" flag in Debian's entries makes the kernel open the interpreter now, so a chroot without
# qemu inside it still runs foreign binaries.
set -eu
dir=/proc/sys/fs/binfmt_misc
for arch in "$@"; do
  case "$arch" in
    arm64|aarch64) name=aarch64 ;;
    armhf|arm) name=arm ;;
    amd64|x86_64) continue ;;
    *) echo "binfmt: no qemu-user-static entry for $arch" >&2; exit 1 ;;
  esac
  conf=/usr/lib/binfmt.d/qemu-$name.conf
  [ -f "$conf" ] || { echo "binfmt: qemu-user-static is not installed (apt-get install qemu-user-static)" >&2; exit 1; }
  if [ ! -f "$dir/register" ]; then
    mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null ||
      { echo "binfmt: cannot mount binfmt_misc on $dir (needs root, and a kernel that has it)" >&2; exit 1; }
  fi
  [ -f "$dir/qemu-$name" ] && continue
  grep -v '^#' "$conf" > "$dir/register"
done
