#!/bin/sh
# relaybox first boot: a configuration written from a PC onto the SD card's boot partition
# (/boot/firmware/relaybox.yaml; /boot/relaybox.yaml on Raspberry Pi OS before bookworm) is
# moved into /etc/relaybox. The boot partition is FAT: anyone can read it and it has no owners,
# so the file (it may hold client secrets) is moved, not copied, and the copy in /etc gets
# 0640 root:relaybox. A file is taken once: it is gone from the card afterwards, so the next
# boot keeps whatever the administrator changed in /etc since. The configuration it replaces is
# kept as relaybox.yaml.previous.
#
# Runs as root from the unit (ExecStartPre=+). Every path can be overridden for tests:
#   RELAYBOX_BOOT_FILES   candidate files, space-separated (first one found wins)
#   RELAYBOX_ETC_DIR      where relaybox.yaml goes        (default /etc/relaybox)
#   RELAYBOX_GROUP        the group that may read it      (default relaybox)
set -eu

candidates=${RELAYBOX_BOOT_FILES:-/boot/firmware/relaybox.yaml /boot/relaybox.yaml}
etc=${RELAYBOX_ETC_DIR:-/etc/relaybox}
group=${RELAYBOX_GROUP:-relaybox}

src=
for f in $candidates; do
  if [ -f "$f" ]; then src=$f; break; fi
done
[ -n "$src" ] || exit 0

umask 077
if [ ! -d "$etc" ]; then
  mkdir -p "$etc"
  chmod 0750 "$etc"
  chgrp "$group" "$etc" 2>/dev/null || true
fi
dest=$etc/relaybox.yaml
# Copy to a temporary name on the target file system first, so that a power cut never leaves a
# half-written relaybox.yaml; the rename below is atomic.
tmp=$(mktemp "$etc/.relaybox.yaml.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat "$src" > "$tmp"
if getent group "$group" >/dev/null 2>&1; then
  chown "root:$group" "$tmp" 2>/dev/null || chgrp "$group" "$tmp"
else
  echo "relaybox first-boot: group $group does not exist; $dest stays readable by root only" >&2
fi
chmod 0640 "$tmp"
sync "$tmp" 2>/dev/null || true
note=
if [ -f "$dest" ]; then
  cp -p "$dest" "$dest.previous"
  note=" (the configuration it replaced is $dest.previous)"
fi
mv -f "$tmp" "$dest"
trap - EXIT
rm -f "$src"
# FAT keeps the deletion in its cache until synced: pull the card right after boot and the
# secret would still be there.
sync 2>/dev/null || true
echo "relaybox first-boot: installed $src as $dest$note" >&2
