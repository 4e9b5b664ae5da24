#!/bin/sh
# relaybox image, first boot: the root partition (the last one) grows to the end of the card and
# its ext4 file system with it, online. Then the unit's condition file keeps it from running again.
set -eu
done_file=/var/lib/relaybox-image/root-grown
part=$(findmnt -n -o SOURCE /)
name=$(basename "$(readlink -f "$part")")
disk=/dev/$(basename "$(readlink -f "/sys/class/block/$name/..")")
number=$(cat "/sys/class/block/$name/partition")
# sfdisk rewrites only the table; the kernel learns the new size of the mounted partition from
# partx (BLKPG), which works while it is in use, unlike re-reading the whole table.
echo ', +' | sfdisk --quiet --no-reread --no-tell-kernel -N "$number" "$disk"
partx --update --nr "$number" "$disk"
resize2fs "$part"
mkdir -p "$(dirname "$done_file")"
touch "$done_file"
echo "relaybox-grow-root: $part now fills $disk ($(df -h --output=size / | tail -n 1 | tr -d ' '))"
