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

# config.txt and cmdline.txt again from /etc/default/raspi-firmware as laid above (raspi-firmware's
# own hook; cheap, unlike the initramfs), then check that the card boots its root by label.
in_root env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware >/dev/null 2>&1
rm -f "$root/etc/default/raspi-firmware.dpkg-dist"
cmdline=$(cat "$root/boot/firmware/cmdline.txt")
case "$cmdline" in
  *root=LABEL=RASPIROOT*cma=* | *cma=*root=LABEL=RASPIROOT*) echo "image: cmdline.txt sets cma=: $cmdline" >&2; exit 1 ;;
  *root=LABEL=RASPIROOT*) ;;
  *) echo "image: cmdline.txt does not boot root=LABEL=RASPIROOT: $cmdline" >&2; exit 1 ;;
esac

# Nothing the running box needs: apt's lists come back with the first `apt update`.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
  "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/tmp/* "$root"/root/.bash_history
echo "relaybox image $(in_root dpkg-query -W -f='${Version}' relaybox), built $(date -u +%Y-%m-%dT%H:%MZ)" > "$root/etc/relaybox-image"
