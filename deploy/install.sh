#!/usr/bin/env bash
# deploy/install.sh — installs relaybox from this built source tree (`make build` first) on a
# machine where the .deb is not an option, in the .deb's layout:
#   /usr/lib/relaybox/{dist,node_modules,package.json,node/bin/node,first-boot.sh}
#   /usr/bin/relaybox, /lib/systemd/system/relaybox.service, /etc/relaybox/relaybox.yaml
# Running it again changes nothing unless the tree changed; an existing /etc/relaybox/relaybox.yaml
# is never touched. Usage: sudo make install   (or: sudo deploy/install.sh)
# Environment:
#   NODE_BIN=path  the Node.js (>= 20) to copy in as /usr/lib/relaybox/node/bin/node; default: `node`
#                  on PATH, the one node_modules was built with (better-sqlite3 must match its ABI)
#   DESTDIR=dir    install under dir instead of /: no user, no chown, no systemctl (tests, images)
set -euo pipefail
cd "$(dirname "$0")/.."
root=${DESTDIR:-}
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (sudo make install)" >&2
  exit 1
fi

node_bin=$(readlink -f "${NODE_BIN:-$(command -v node || echo /nonexistent)}")
major=$("$node_bin" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
  echo "install.sh: relaybox needs Node.js >= 20 (found: ${node_bin} $("$node_bin" --version 2>/dev/null || echo none)); set NODE_BIN" >&2
  exit 1
fi
# A node built against a shared libnode (Debian's own nodejs package) would break when that
# package changes: then the wrapper uses the `node` on PATH instead of a copy.
bundle=$node_bin
if command -v ldd >/dev/null && ldd "$node_bin" 2>/dev/null | grep -q libnode; then bundle=; fi

changed=
note() { echo "install.sh: $*"; }

# Installs a file when it differs from what is there; mode and owner are always set.
put() { # put SRC DEST MODE
  if ! cmp -s "$1" "$2"; then
    install -D -m "$3" "$1" "$2"
    note "installed $2"
    changed=1
  else
    chmod "$3" "$2"
  fi
}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
RELAYBOX_PREBUILT_DIST=1 NODE_BIN=$bundle deploy/stage.sh "$stage/relaybox"
install -m 0755 deploy/first-boot.sh "$stage/relaybox/first-boot.sh"
gzip -9n < deploy/debian/relaybox.1 > "$stage/relaybox.1.gz"

lib=$root/usr/lib/relaybox
if [ -d "$lib" ] && diff -r -q "$stage/relaybox" "$lib" >/dev/null 2>&1; then
  note "$lib is up to date"
else
  # Swap the whole tree in at once: a half-copied node_modules never runs.
  mkdir -p "$(dirname "$lib")"
  rm -rf "$lib.new" "$lib.old"
  cp -a "$stage/relaybox" "$lib.new"
  if [ -d "$lib" ]; then mv "$lib" "$lib.old"; fi
  mv "$lib.new" "$lib"
  rm -rf "$lib.old"
  note "installed $lib"
  changed=1
fi
put deploy/relaybox.sh "$root/usr/bin/relaybox" 0755
put systemd/relaybox.service "$root/lib/systemd/system/relaybox.service" 0644
put "$stage/relaybox.1.gz" "$root/usr/share/man/man1/relaybox.1.gz" 0644

if [ -z "$root" ] && ! getent passwd relaybox >/dev/null; then
  if command -v adduser >/dev/null; then
    adduser --quiet --system --group --home /var/lib/relaybox --no-create-home relaybox
  else
    useradd --system --user-group --home-dir /var/lib/relaybox --no-create-home --shell /usr/sbin/nologin relaybox
  fi
  note "created the system user relaybox"
fi
owner() { [ -z "$root" ] && chown "$@"; return 0; }

install -d -m 0750 "$root/etc/relaybox" "$root/var/lib/relaybox"
owner root:relaybox "$root/etc/relaybox"
owner relaybox:relaybox "$root/var/lib/relaybox"
conf=$root/etc/relaybox/relaybox.yaml
if [ ! -e "$conf" ]; then
  install -m 0640 deploy/relaybox.yaml "$conf"
  owner root:relaybox "$conf"
  note "installed the example configuration $conf"
  changed=1
else
  note "kept $conf"
fi

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --quiet relaybox.service
  if systemctl is-active --quiet relaybox.service; then
    [ -n "$changed" ] && systemctl restart relaybox.service && note "restarted relaybox"
  else
    systemctl start relaybox.service && note "started relaybox (systemctl status relaybox)"
  fi
elif [ -z "$root" ]; then
  note "systemd is not running here: start relaybox with: relaybox serve"
fi
[ -n "$changed" ] || note "nothing changed"
