#!/usr/bin/env bash
# deploy/image/build-image.sh DEB|--base-only [OUTDIR] — `make image`: a flashable Raspberry Pi card image
# (Pi 3, 4, 400, Zero 2 W; 64-bit) with relaybox installed, as OUTDIR/relaybox-<version>-arm64.img.xz.
#
# Made the way Debian's own Raspberry Pi images are (Debian 12 arm64, raspi-firmware,
# linux-image-arm64, a FAT partition labelled RASPIFIRM at /boot/firmware and an ext4 root labelled
# RASPIROOT), but by hand instead of with vmdb2: debootstrap + apt in a chroot under
# qemu-user-static, then `mkfs.ext4 -d` and mtools fill the two file systems as plain files and
# sfdisk + dd put them in one image. No loop device, kpartx or mount of the image is needed, so it
# builds in a container too. See deploy/image/README.md.
#
# The Debian part (everything but relaybox and this directory's files) is cached as a tar keyed by
# the package list, so a rebuild after a code change takes a few minutes. Environment:
#   RELAYBOX_IMAGE_CACHE    default /var/cache/relaybox
#   RELAYBOX_DEBIAN_MIRROR  default http://deb.debian.org/debian
#   IMAGE_XZ_LEVEL          default 6
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
deb=${1:?usage: build-image.sh DEB|--base-only [OUTDIR]}
[ "$deb" = --base-only ] || deb=$(realpath "$deb")
out=$(realpath -m "${2:-$here/../../var/image}")
cache=${RELAYBOX_IMAGE_CACHE:-/var/cache/relaybox}
mirror=${RELAYBOX_DEBIAN_MIRROR:-http://deb.debian.org/debian}

need() { command -v "$1" >/dev/null || { echo "image: $1 is missing (apt-get install $2)" >&2; exit 1; }; }
[ "$(id -u)" = 0 ] || { echo "image: needs root (debootstrap, chroot, file ownership)" >&2; exit 1; }
need debootstrap debootstrap
need mkfs.ext4 e2fsprogs
need mkfs.vfat dosfstools
need mcopy mtools
need sfdisk fdisk
need xz xz-utils
[ -f /usr/lib/binfmt.d/qemu-aarch64.conf ] || { echo "image: qemu-user-static is missing (apt-get install qemu-user-static)" >&2; exit 1; }
if [ "$deb" != --base-only ]; then
  [ "$(dpkg-deb -f "$deb" Architecture)" = arm64 ] || { echo "image: $deb is not an arm64 package (make deb ARCH=arm64)" >&2; exit 1; }
  version=$(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')
fi

# Debian packages of the image. Wi-Fi firmware for the Pi 3, 4 and Zero 2 W (the Zero has no
# Ethernet); ca-certificates for the TLS upstreams; avahi for relaybox.local; timesyncd because a
# Pi has no clock and OAuth needs one; sudo and openssh-server for the admin who asks for SSH.
packages=(linux-image-arm64 raspi-firmware firmware-brcm80211 initramfs-tools zstd
  systemd-sysv systemd-timesyncd systemd-resolved dbus udev kmod iproute2 wpasupplicant
  avahi-daemon libnss-mdns openssh-server sudo fdisk dosfstools ca-certificates procps nano less)
key=$(printf '%s\n' "${packages[@]}" "$(sed -n '/# --- base$/,/# --- end base$/p' "$here/build-image.sh")" | sha256sum | cut -c1-12)
minbase=$cache/bookworm-arm64-minbase.tar
base=$cache/bookworm-arm64-image-$key.tar

work=$(mktemp -d "${TMPDIR:-/tmp}/relaybox-image.XXXXXX")
root=$work/root
unmount_all() {
  awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
}
trap 'unmount_all; rm -rf "$work"' EXIT
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
mount_api() {
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --bind /dev "$root/dev"
  mount --bind /dev/pts "$root/dev/pts"
}
step() { printf 'image: %s (%ss)\n' "$1" "$SECONDS" >&2; }

"$here/../binfmt.sh" arm64
mkdir -p "$root"
if [ ! -s "$base" ]; then
  step "Debian 12 arm64 root with the image's packages (once; cached as $base)"
  "$here/../debian-root.sh" arm64 "$minbase" adduser
  tar -C "$root" --numeric-owner -xf "$minbase"
  mount_api
  # --- base
  rm -f "$root/etc/resolv.conf"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # No service starts inside the build.
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main non-free-firmware
deb $mirror bookworm-updates main non-free-firmware
deb http://deb.debian.org/debian-security bookworm-security main non-free-firmware
SOURCES
  # raspi-firmware's kernel hook writes config.txt and cmdline.txt with this root and console.
  mkdir -p "$root/boot/firmware" "$root/etc/default"
  install -m 0644 "$here/rootfs/etc/default/raspi-firmware" "$root/etc/default/raspi-firmware"
  in_root apt-get update -qq
  # The initramfs is made once, after everything is installed: under emulation one takes ~20
  # minutes, and the kernel's hook and initramfs-tools' trigger would each make one.
  mkdir -p "$root/etc/initramfs-tools"
  printf 'update_initramfs=no\nbackup_initramfs=no\n' > "$root/etc/initramfs-tools/update-initramfs.conf"
  in_root INITRD=No apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold "${packages[@]}" >"$work/apt.log" 2>&1 ||
    { tail -30 "$work/apt.log" >&2; exit 1; }
  conf=$root/etc/initramfs-tools/update-initramfs.conf
  if [ -f "$conf.dpkg-dist" ]; then mv "$conf.dpkg-dist" "$conf"; else sed -i 's/^update_initramfs=no/update_initramfs=yes/' "$conf"; fi
  # raspi-firmware's hook then copies kernel, initrd and device trees to /boot/firmware.
  in_root update-initramfs -c -k all >>"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log" >&2; exit 1; }
  in_root apt-get clean
  rm -rf "$root/var/lib/apt/lists/"*
  # --- end base
  unmount_all
  tar -C "$root" --numeric-owner -cf "$base.part" .
  mv "$base.part" "$base"
  rm -rf "$root" && mkdir -p "$root"
fi
[ "$deb" != --base-only ] || exit 0

step "unpacking the cached Debian root"
tar -C "$root" --numeric-owner -xf "$base"
mount_api
step "installing $(basename "$deb")"
cp "$deb" "$root/tmp/relaybox.deb"
in_root dpkg -i /tmp/relaybox.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; exit 1; }
rm "$root/tmp/relaybox.deb"

step "the appliance's settings"
"$here/configure-root.sh" "$root"
unmount_all

step "file systems"
"$here/assemble.sh" "$root" "$work/relaybox.img"
rm -rf "$root"

name=relaybox-$version-arm64.img.xz
step "compressing into $out/$name"
mkdir -p "$out"
xz -T0 -"${IMAGE_XZ_LEVEL:-6}" -c "$work/relaybox.img" > "$out/$name.part"
mv "$out/$name.part" "$out/$name"
step "done: $(du -h "$out/$name" | cut -f1)"
echo "$out/$name"
