// deploy/runtime-modules.mjs NODE_MODULES — deletes from a pruned node_modules what a running
// relaybox never loads: packages only install scripts need (better-sqlite3's prebuild-install and
// everything only it pulls in: node-abi, tar-fs, simple-get, rc, …) and tool leftovers (markers,
// caches). What stays is the closure of package.json's dependencies, resolved as Node resolves them.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/** Needed only by `npm install` of a package that depends on it; the addon is built (or cross-built) before staging. */
const BUILD_ONLY = new Set(['prebuild-install']);

const nm = process.argv[2] && resolve(process.argv[2]);
if (!nm || !existsSync(nm)) throw new Error('usage: runtime-modules.mjs NODE_MODULES');
const root = dirname(nm);

/** The directory Node would load `name` from, looking up from `fromDir` as require() does. */
function resolvePackage(name, fromDir) {
  for (let dir = fromDir; dir.startsWith(root); dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === root) break;
  }
  return null;
}

const keep = new Set();
const queue = [root];
while (queue.length > 0) {
  const dir = queue.pop();
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  for (const name of [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]) {
    if (BUILD_ONLY.has(name)) continue;
    const found = resolvePackage(name, dir);
    if (found && !keep.has(found)) {
      keep.add(found);
      queue.push(found);
    }
  }
}

/** Every installed package directory under `dir`'s node_modules (scoped ones included), nested ones too. */
function* installed(modules) {
  if (!existsSync(modules)) return;
  for (const entry of readdirSync(modules)) {
    const path = join(modules, entry);
    if (entry.startsWith('@')) {
      for (const scoped of readdirSync(path)) yield* withNested(join(path, scoped));
    } else if (!entry.startsWith('.')) yield* withNested(path);
  }
}
function* withNested(dir) {
  yield dir;
  yield* installed(join(dir, 'node_modules'));
}

let removed = 0;
for (const dir of [...installed(nm)]) {
  if (keep.has(dir) || !existsSync(dir)) continue;
  rmSync(dir, { recursive: true, force: true });
  removed++;
}
// Markers and caches of the tools that built the tree (make's .installed, vite/vitest caches).
for (const entry of readdirSync(nm)) {
  if (entry.startsWith('.')) rmSync(join(nm, entry), { recursive: true, force: true });
}
process.stdout.write(`runtime-modules: kept ${keep.size} packages, removed ${removed} (${relative(root, nm)})\n`);
