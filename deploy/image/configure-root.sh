#!/usr/bin/env bash
# deploy/image/configure-root.sh ROOT — the appliance's settings on an arm64 Debian root that has
# raspi-firmware, the kernel and relaybox installed (called by build-image.sh, /proc etc. mounted).
# Each setting and its reason is in the file that carries it, under rootfs/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${1:?usage: configure-root.sh ROOT}
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

# The files under rootfs/, owned by root, with their modes (scripts 0755, the rest 0644).
(cd "$here/rootfs" && find . -type f) | while read -r f; do
  mode=0644
  case "$f" in *.sh) mode=0755 ;; esac
  install -D -o root -g root -m "$mode" "$here/rootfs/$f" "$root/$f"
done

in_root systemctl enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
  avahi-daemon.service relaybox.service relaybox-grow-root.service relaybox-boot-setup.service 2>/dev/null
# SSH stays off until the boot partition asks for it; each card makes its own host keys then.
in_root systemctl disable ssh.service 2>/dev/null
rm -f "$root"/etc/ssh/ssh_host_*

# No password for root and no default user: a person adds one with userconf.txt.
in_root passwd --lock root >/dev/null
# Each card gets its own machine id on its first boot (and systemd's "first boot" presets).
echo uninitialized > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
rm -f "$root/usr/sbin/policy-rc.d"

# What a person sees on the card in a PC: an example to copy to relaybox.yaml.
install -m 0644 "$here/boot/relaybox.example.yaml" "$root/boot/firmware/relaybox.example.yaml"

# raspi-firmware wrote cmdline.txt when the kernel was installed; check it boots by label.
grep -q 'root=LABEL=RASPIROOT' "$root/boot/firmware/cmdline.txt" ||
  { echo "image: /boot/firmware/cmdline.txt does not name root=LABEL=RASPIROOT: $(cat "$root/boot/firmware/cmdline.txt")" >&2; exit 1; }

# Nothing the running box needs: apt's lists come back with the first `apt update`.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.bash_history
echo "relaybox image $(in_root dpkg-query -W -f='${Version}' relaybox), built $(date -u +%Y-%m-%dT%H:%MZ)" > "$root/etc/relaybox-image"
