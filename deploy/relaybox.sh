#!/bin/sh
# /usr/bin/relaybox: runs relaybox on the Node.js runtime that was installed with it
# (/usr/lib/relaybox/node/bin/node), whatever `node` the system has: better-sqlite3's compiled
# addon only loads on the Node version it was built for.
set -e
RELAYBOX_HOME=${RELAYBOX_HOME:-/usr/lib/relaybox}

# Run by root (sudo relaybox queue list, doctor, oauth ...), relaybox acts as the relaybox user:
# a spool file or OAuth token that root creates in /var/lib/relaybox would be unreadable to the
# service afterwards. CAP_NET_BIND_SERVICE is kept so that `sudo relaybox serve` can still bind
# port 25. RELAYBOX_AS_ROOT=1 opts out. The switch is said once on stderr (a file root can read
# and relaybox cannot is otherwise a riddle); RELAYBOX_FROM_ROOT=1 tells the CLI, which then names
# such a file and why. first-boot.sh, which wants the switch, sets RELAYBOX_SWITCH_NOTE=0.
# `backup` and `restore` stay root: restore writes /etc/relaybox (and gives data_dir's files to
# its owner itself), backup writes where the admin says; SQLite gives the spool's -wal and -shm
# files the owner of spool.db even when root makes them.
case "${1:-}" in backup | restore) RELAYBOX_AS_ROOT=${RELAYBOX_AS_ROOT:-1} ;; esac
if [ "$(id -u)" = 0 ] && [ -z "${RELAYBOX_AS_ROOT:-}" ] && getent passwd relaybox >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1; then
  [ "${RELAYBOX_SWITCH_NOTE:-1}" = 0 ] ||
    echo "relaybox: running as the relaybox user, as the service does; files it reads must be readable by that user (RELAYBOX_AS_ROOT=1 stays root)" >&2
  export RELAYBOX_AS_ROOT=1 RELAYBOX_FROM_ROOT=1 HOME=/var/lib/relaybox
  exec setpriv --reuid=relaybox --regid=relaybox --init-groups \
    --inh-caps=+net_bind_service --ambient-caps=+net_bind_service -- "$0" "$@"
fi

node=$RELAYBOX_HOME/node/bin/node
if [ ! -r "$RELAYBOX_HOME/dist/cli.js" ]; then
  echo "relaybox: cannot read $RELAYBOX_HOME/dist/cli.js: missing, or the $(id -un) user may not read it or a directory above it" >&2
  exit 1
fi
[ -x "$node" ] || node=$(command -v node) || { echo "relaybox: no Node.js runtime in $RELAYBOX_HOME/node/bin" >&2; exit 1; }
# glibc keeps freed mid-sized blocks (socket reads, spool chunks) inside its heap, so memory a burst
# of uploads took never went back to the system: 2,000 stalled uploads left the service at 104 MB a
# minute after they closed (65 MB idle). From 32 KiB on, blocks get mappings of their own that
# return on free (71 MB). Set it to change it.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-32768}"
# A small young generation: relaybox allocates little, and V8's default semi-spaces cost a Pi about
# 10 MB of resident memory for nothing (measured: 88 → 77 MB idle). Only a command-line flag works.
exec "$node" --max-semi-space-size=1 "$RELAYBOX_HOME/dist/cli.js" "$@"
