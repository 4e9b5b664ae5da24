#!/usr/bin/env bash
# deploy/stage.sh DEST — lays out what goes into /usr/lib/relaybox, from this source tree:
#   DEST/dist           the compiled service (tsc into DEST, so no stale file of an old build rides along)
#   DEST/node_modules   production dependencies only (a pruned copy of ./node_modules: no second
#                       download and no second compile of better-sqlite3)
#   DEST/package.json   (relaybox reads its version from it)
#   DEST/node/bin/node  when NODE_BIN names a Node.js binary to bundle
# Used by build-deb.sh and install.sh. Environment:
#   NODE_BIN=path            a node binary to copy into DEST/node/bin/node (stripped)
#   ADDON=path               a better_sqlite3.node to ship instead of the one `npm ci` built (a
#                            cross-compiled one, for a package of another architecture)
#   STRIP=cmd                the strip for those binaries (default strip; aarch64-linux-gnu-strip ...)
#   RELAYBOX_PREBUILT_DIST=1 copy ./dist as it is instead of compiling (tests: `make build` just ran)
set -euo pipefail
dest=${1:?usage: deploy/stage.sh DEST}
cd "$(dirname "$0")/.."
repo=$PWD

[ -d node_modules ] || { echo "stage: run 'make build' first (no node_modules)" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$dest"

# --- dist --------------------------------------------------------------------------------------
if [ -n "${RELAYBOX_PREBUILT_DIST:-}" ]; then
  [ -f dist/cli.js ] || { echo "stage: no dist/cli.js (run 'make build')" >&2; exit 1; }
  cp -a dist "$dest/dist"
else
  "$repo/node_modules/.bin/tsc" -p tsconfig.json --outDir "$dest/dist" --sourceMap false
  cp -a src/web/assets "$dest/dist/web/assets"
fi
# Source maps point at src/*.ts, which is not shipped.
find "$dest/dist" -name '*.map' -delete

cp package.json "$dest/package.json"

# --- node_modules: a pruned copy ----------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -a package.json package-lock.json node_modules "$work/"
(cd "$work" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
nm=$work/node_modules
# Only what relaybox loads: no install-time helpers (prebuild-install and its tree), no markers or caches.
node "$repo/deploy/runtime-modules.mjs" "$nm" >/dev/null
# What a running relaybox never reads: build inputs of the native addon, type declarations,
# docs, tests and tool links. Licences stay.
rm -rf "$nm/.bin" "$nm/.vite-temp" "$nm/.package-lock.json" "$nm/@types" \
  "$nm/better-sqlite3/deps" "$nm/better-sqlite3/src" "$nm/better-sqlite3/binding.gyp"
if [ -d "$nm/better-sqlite3/build" ]; then
  find "$nm/better-sqlite3/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
  find "$nm/better-sqlite3/build/Release" -mindepth 1 -maxdepth 1 ! -name better_sqlite3.node -exec rm -rf {} +
fi
find "$nm" \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '*.ts' \
  -o -name '*.md' ! -iname 'licen[cs]e*' -o -name '.npmignore' -o -name '.eslintrc*' -o -name '.editorconfig' \
  -o -name '.travis.yml' -o -name '.gitattributes' -o -name '.gitignore' -o -name '*.html' \
  -o -name '*.gyp' -o -name '*.gypi' -o -name '*.sh' \) -type f -delete
find "$nm" -mindepth 2 -maxdepth 3 -type d \( -name test -o -name tests -o -name __tests__ -o -name .github \
  -o -name .husky -o -name docs -o -name example -o -name examples -o -name benchmarks -o -name bench -o -name fixture -o -name fixtures \) -prune -exec rm -rf {} +
find "$nm" -depth -type d -empty -delete
addon=$nm/better-sqlite3/build/Release/better_sqlite3.node
[ -n "${ADDON:-}" ] && install -D -m 0644 "$ADDON" "$addon"
strip_bin() {
  command -v "${STRIP:-strip}" >/dev/null || return 0
  "${STRIP:-strip}" "$@" 2>/dev/null || echo "stage: ${STRIP:-strip} could not strip ${*: -1} (shipped with its symbols)" >&2
}
strip_bin --strip-unneeded --remove-section=.comment "$addon"
mv "$nm" "$dest/node_modules"

# --- the runtime ---------------------------------------------------------------------------------
if [ -n "${NODE_BIN:-}" ]; then
  install -d "$dest/node/bin"
  install -m 0755 "$NODE_BIN" "$dest/node/bin/node"
  # Debug symbols are most of the npm-packaged binary's size; the dynamic symbols that native
  # addons link against stay.
  strip_bin --strip-unneeded --remove-section=.comment --remove-section=.note "$dest/node/bin/node"
fi

# Plain permissions whatever the umask or the npm cache left: directories 0755, files 0644, and
# only the runtime executable. Scripts with a #! line (dist/cli.js, the packages' own CLIs) are
# loaded as modules by /usr/bin/relaybox and never run on their own.
find "$dest" -type d -exec chmod 0755 {} +
find "$dest" -type f -exec chmod 0644 {} +
[ -f "$dest/node/bin/node" ] && chmod 0755 "$dest/node/bin/node"

# The addon must load on the runtime it ships with: a Node major mismatch fails here, not on a Pi.
# A runtime for another architecture runs under qemu-user through binfmt_misc (deploy/binfmt.sh);
# QEMU_LD_PREFIX (set by build-deb.sh) points it at the cross toolchain's libc and libstdc++.
runtime=${NODE_BIN:-node}
if ! "$runtime" --version >/dev/null 2>&1; then
  case "$(od -An -tu2 -j18 -N2 "$runtime" 2>/dev/null | tr -d ' ')" in
    183) qemu=aarch64 ;; 40) qemu=arm ;; *) qemu= ;;
  esac
  if [ -n "$qemu" ] && [ ! -f "/proc/sys/fs/binfmt_misc/qemu-$qemu" ]; then
    echo "stage: cannot run the $qemu runtime here to check that the addon loads: binfmt_misc has no qemu-$qemu entry (run deploy/binfmt.sh as root; apt-get install qemu-user-static)" >&2
  else
    echo "stage: $runtime does not run on this machine" >&2
  fi
  exit 1
fi
(cd "$dest" && "$runtime" -e "require('./node_modules/better-sqlite3')(':memory:').prepare('select 1').get()") ||
  { echo "stage: better-sqlite3${ADDON:+ ($ADDON)} does not load on Node.js $("$runtime" --version): ${ADDON:+delete it to rebuild it, or }rebuild node_modules with that Node" >&2; exit 1; }
