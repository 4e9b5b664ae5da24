#!/bin/sh
# relaybox image, every boot before SSH and relaybox: what a person put on the boot partition from
# a PC, in Raspberry Pi OS's conventions. Each file is used once and removed (the partition is FAT:
# anyone with the card can read it).
#   ssh, ssh.txt            turn SSH on (for good; host keys are made on this card, not in the image)
#   userconf.txt, userconf  "name:hash" (`openssl passwd -6`, as Raspberry Pi Imager writes it): that
#                           user is created, or its password set; it may use sudo and read relaybox's files
#   wpa_supplicant.conf     Wi-Fi for wlan0 (a Pi Zero 2 W has nothing else)
# There is no default user and no default password: without userconf.txt nobody can log in.
set -eu
boot=${RELAYBOX_BOOT_DIR:-/boot/firmware}
log() { echo "relaybox-boot-setup: $*"; }
changed=

for f in "$boot/userconf.txt" "$boot/userconf"; do
  [ -f "$f" ] || continue
  line=$(head -n 1 "$f" | tr -d '\r\n')
  rm -f "$f"
  changed=1
  user=${line%%:*}
  hash=${line#*:}
  if ! printf '%s' "$user" | grep -Eq '^[a-z_][a-z0-9_-]{0,31}$' || [ "$user" = root ] || [ -z "$hash" ] || [ "$hash" = "$line" ]; then
    log "ignored $f: expected one line name:hash (openssl passwd -6), a name other than root"
    continue
  fi
  if ! id "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash --groups sudo,relaybox "$user"
    log "created user $user"
  fi
  usermod --password "$hash" "$user"
  log "password set for $user"
done

for f in "$boot/ssh" "$boot/ssh.txt"; do
  [ -e "$f" ] || continue
  rm -f "$f"
  changed=1
  ssh-keygen -A >/dev/null
  systemctl enable ssh.service >/dev/null 2>&1
  systemctl start --no-block ssh.service
  log "SSH turned on"
done

if [ -f "$boot/wpa_supplicant.conf" ]; then
  install -D -m 0600 "$boot/wpa_supplicant.conf" /etc/wpa_supplicant/wpa_supplicant-wlan0.conf
  rm -f "$boot/wpa_supplicant.conf"
  changed=1
  systemctl enable wpa_supplicant@wlan0.service >/dev/null 2>&1
  systemctl start --no-block wpa_supplicant@wlan0.service
  log "Wi-Fi set up from wpa_supplicant.conf"
fi

# FAT keeps deletions in its cache: make them stick before someone pulls the card.
[ -z "$changed" ] || sync
