#!/bin/sh
# relaybox first boot: a configuration written from a PC onto the SD card's boot partition
# (/boot/firmware/relaybox.yaml; /boot/relaybox.yaml on Raspberry Pi OS before bookworm) is
# moved into /etc/relaybox, if relaybox's own checker accepts it. The boot partition is FAT:
# anyone can read it and it has no owners, so the file (it may hold client secrets) is moved, not
# copied, and the copy in /etc gets 0640 root:relaybox. A file is taken once: it is gone from the
# card afterwards, so the next boot keeps whatever the administrator changed in /etc since. The
# configuration it replaces is kept as relaybox.yaml.previous.
#
# A file the checker refuses is not taken, not even in part: relaybox starts on its previous
# configuration, the file stays on the card for the person to fix, and relaybox-error.txt beside
# it says why (the person reads it on their PC, without a console on the box). Every start checks
# the card again; an unchanged refused file is checked once per boot only (the checker is a Node
# start, seconds on a small Pi, and Restart= may start the service every few seconds).
#
# Runs as root from the unit (ExecStartPre=+) and always exits 0: whatever happens here, relaybox
# starts on the configuration it has. Each of these can be overridden for tests:
#   RELAYBOX_BOOT_FILES   candidate files, space-separated (first one found wins)
#   RELAYBOX_ETC_DIR      where relaybox.yaml goes        (default /etc/relaybox)
#   RELAYBOX_GROUP        the group that may read it      (default relaybox)
#   RELAYBOX_CLI          the relaybox command, split on spaces (default /usr/bin/relaybox)
#   RELAYBOX_RUN_DIR      where a refusal is remembered until reboot (default /run)
set -eu

candidates=${RELAYBOX_BOOT_FILES:-/boot/firmware/relaybox.yaml /boot/relaybox.yaml}
etc=${RELAYBOX_ETC_DIR:-/etc/relaybox}
group=${RELAYBOX_GROUP:-relaybox}
cli=${RELAYBOX_CLI:-/usr/bin/relaybox}
rundir=${RELAYBOX_RUN_DIR:-/run}

src=
for f in $candidates; do
  if [ -f "$f" ]; then src=$f; break; fi
done
[ -n "$src" ] || exit 0

say() { echo "relaybox first-boot: $*" >&2; }
errfile=$(dirname "$src")/relaybox-error.txt
marker=$rundir/relaybox-first-boot.refused
dest=$etc/relaybox.yaml
# A verdict depends on the file and on what it may name beside it in /etc/relaybox ({ file: }
# secrets): a change to either is checked again.
verdict_key() { { cat "$src"; ls -ln --time-style=+%s "$etc" 2>/dev/null; } | sha256sum | cut -d' ' -f1; }

# The same file refused earlier in this boot, and its explanation still on the card: nothing new.
if [ -f "$errfile" ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$(verdict_key) $src" ]; then
  say "NOT using $src: unchanged since it was refused; $errfile says why (delete it, or reboot, to check again now)"
  exit 0
fi

# Whatever fails from here on, relaybox still starts on the configuration it has.
tmp=
finish() {
  rc=$?
  [ -z "$tmp" ] || rm -f "$tmp"
  [ "$rc" = 0 ] || say "stopped (exit $rc); relaybox starts with its current configuration"
  exit 0
}
trap finish EXIT

umask 077
if [ ! -d "$etc" ]; then
  mkdir -p "$etc"
  chmod 0750 "$etc"
  chgrp "$group" "$etc" 2>/dev/null || true
fi
# Copy to a temporary name on the target file system first, so that a power cut never leaves a
# half-written relaybox.yaml; the rename below is atomic. The copy is also what gets checked: in
# the service's directory, with the service's owner and mode, so that `{ file: ... }` secrets and
# permissions are checked as the service will meet them.
tmp=$(mktemp "$etc/.relaybox.yaml.XXXXXX")
cat "$src" > "$tmp"
if getent group "$group" >/dev/null 2>&1; then
  chown "root:$group" "$tmp" 2>/dev/null || chgrp "$group" "$tmp"
else
  say "group $group does not exist; $dest stays readable by root only"
fi
chmod 0640 "$tmp"

# Run by root, /usr/bin/relaybox checks as the relaybox user (see relaybox.sh). From / as the
# service runs, so relative paths mean the same. Bounded inside the unit's TimeoutStartSec (300 s)
# with room: a slow card right after a power cut (journal replay, fsck), or the image test's
# emulated Pi on a busy host, can take Node past a minute here.
# Exit 2 with "bad configuration" is a verdict on the file; anything else means no verdict.
rc=0
report=$(cd / && RELAYBOX_SWITCH_NOTE=0 timeout 180 $cli check-config --config "$tmp" 2>&1 >/dev/null) || rc=$?

crlf() { printf '%s\r\n' "$@"; } # old Notepad shows LF-only text as one long line

# Written beside the card's file for a person who has the card in their PC (Windows or macOS):
# $1 says what happened, $2 the details and $3 what to do (lines, indented by two spaces).
# The byte order mark makes old Notepad read UTF-8. Failing to write it must not stop relaybox.
write_error() {
  if [ -f "$dest" ]; then
    running="relaybox is still running, with its previous settings. Nothing in this file was applied."
  else
    running="relaybox has no settings yet, so it cannot run until this file is fixed."
  fi
  {
    printf '\357\273\277'
    crlf "relaybox did NOT use relaybox.yaml from this card" \
      "=================================================" "" \
      "Checked: $(date '+%Y-%m-%d %H:%M %Z') (the relaybox's clock), on $(uname -n)." "" \
      "$1" ""
    printf '%s\n' "$2" | sed 's/$/\r/'
    crlf "" "$running" "" "What to do:"
    printf '%s\n' "$3" | sed 's/$/\r/'
    crlf "" "To keep the current settings instead, delete relaybox.yaml and this note from the card."
  } > "$errfile.tmp" && mv -f "$errfile.tmp" "$errfile" && sync -f "$errfile" ||
    { say "could not write $errfile"; rm -f "$errfile.tmp" || true; }
}

if [ "$rc" = 0 ]; then
  sync "$tmp" 2>/dev/null || true
  note=
  if [ -f "$dest" ]; then
    cp -p "$dest" "$dest.previous"
    note=" (the configuration it replaced is $dest.previous)"
  fi
  mv -f "$tmp" "$dest"
  tmp=
  rm -f "$src" "$errfile" "$marker" || say "could not remove $src from the card"
  # FAT keeps the deletion in its cache until synced: pull the card right after boot and the
  # secret would still be there.
  sync 2>/dev/null || true
  say "installed $src as $dest$note"
  exit 0
fi

# The checker names the file it read (the temporary copy) in its first line; a person needs only
# the problems below it.
problems=$(printf '%s\n' "$report" | sed -n '/^  /p')
if [ "$rc" = 2 ] && [ -n "$problems" ] && printf '%s\n' "$report" | grep -q '^relaybox: bad configuration'; then
  write_error "These problems were found in it:" "$problems" \
    "  1. Open relaybox.yaml on this card in a text editor and correct what is named above.
  2. Save it, eject the card safely, and put it back into the relaybox.
  3. Switch the relaybox on (or restart it). It checks relaybox.yaml on every start;
     once the file is good, relaybox takes it off the card and deletes this note."
  # Remembered until reboot: an unchanged file is not checked again at every restart.
  rm -f "$tmp"
  tmp=
  printf '%s\n' "$(verdict_key) $src" 2>/dev/null > "$marker" || true
  say "NOT using $src, relaybox keeps its current configuration; problems (also in $errfile):"
  printf '%s\n' "$problems" >&2
else
  # No verdict (the checker is missing or failed): not taken either, but tried again next start.
  write_error "relaybox could not check it (usually a fault of the box, not of the file). It said:" \
    "$(printf '%s\n' "${report:-exit status $rc}" | sed 's/^/  /')" \
    "  1. Put the card back into the relaybox and switch it on (or restart it): every start
     tries again, and a good file is then taken off the card and this note deleted.
  2. If this note comes back, ask whoever looks after the relaybox."
  say "NOT using $src: $cli check-config gave no verdict (exit $rc): $report"
fi
exit 0
