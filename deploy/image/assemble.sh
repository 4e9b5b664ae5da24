#!/usr/bin/env bash
# deploy/image/assemble.sh ROOT IMAGE — the card image from a finished root directory (ROOT is used up):
#   partition 1  FAT32 "RASPIFIRM", 256 MiB at 4 MiB: ROOT/boot/firmware (what a PC shows)
#   partition 2  ext4 "RASPIROOT": the rest of ROOT, sized to its contents plus room; it grows to
#                the card on the first boot (relaybox-grow-root.service)
# Both file systems are built as plain files (mkfs.ext4 -d, mkfs.vfat + mcopy) and copied into
# place with dd: no loop device and no mount.
set -euo pipefail
root=${1:?usage: assemble.sh ROOT IMAGE}
image=${2:?usage: assemble.sh ROOT IMAGE}
work=$(mktemp -d "$(dirname "$image")/assemble.XXXXXX")
trap 'rm -rf "$work"' EXIT

boot_start_mib=4
boot_mib=256
# Root: what is there, plus a quarter and 256 MiB for the spool and logs until the first boot
# grows it to the card.
used_mib=$(du -s --block-size=1M --exclude=./boot/firmware "$root" | cut -f1)
root_mib=$(( (used_mib * 5 / 4 + 256 + 3) / 4 * 4 ))

mkfs.vfat -n RASPIFIRM -F 32 -C "$work/boot.img" $((boot_mib * 1024)) >/dev/null
mcopy -s -p -m -i "$work/boot.img" "$root/boot/firmware/"* ::/

# The firmware's files live on their own file system; in the root, /boot/firmware is an empty
# mount point. (The caller discards ROOT afterwards.)
rm -rf "$root/boot/firmware" && mkdir -m 0755 "$root/boot/firmware"
mkfs.ext4 -q -L RASPIROOT -d "$root" -E root_owner=0:0 "$work/root.img" "${root_mib}M" >/dev/null

total_mib=$((boot_start_mib + boot_mib + root_mib))
rm -f "$image"
truncate -s "${total_mib}M" "$image"
sfdisk --quiet "$image" <<TABLE
label: dos
unit: sectors
start=$((boot_start_mib * 2048)), size=$((boot_mib * 2048)), type=c
start=$(((boot_start_mib + boot_mib) * 2048)), size=$((root_mib * 2048)), type=83
TABLE
dd if="$work/boot.img" of="$image" bs=1M seek="$boot_start_mib" conv=notrunc,sparse status=none
dd if="$work/root.img" of="$image" bs=1M seek="$((boot_start_mib + boot_mib))" conv=notrunc,sparse status=none
echo "assemble: $image: boot $boot_mib MiB, root $root_mib MiB ($used_mib MiB used)" >&2
