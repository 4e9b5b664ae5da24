import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A fresh minimal Debian 12 root to install the .deb into, as on a stock box. debootstrap builds
 * one once (about a minute and a half from Debian's mirror); it is kept as a tar file and each
 * test unpacks its own copy in seconds. Environment:
 *   RELAYBOX_TEST_ROOT_CACHE  where the tar is kept (default /var/cache/relaybox-test)
 *   RELAYBOX_DEBIAN_MIRROR    default http://deb.debian.org/debian
 */
const CACHE = process.env.RELAYBOX_TEST_ROOT_CACHE ?? '/var/cache/relaybox-test';
const TARBALL = join(CACHE, 'bookworm-minbase.tar');
const MIRROR = process.env.RELAYBOX_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
const BUILD_TIMEOUT_MS = 6 * 60_000;

export type RootResult = { dir: string; cleanup: () => void } | { skip: string };

function has(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

/** Why this machine cannot run the chroot test, or undefined when it can. */
export function rootUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (chroot, dpkg, mount)';
  if (!has('chroot') || !has('dpkg-deb')) return 'needs chroot and dpkg-deb (a Debian machine)';
  if (!existsSync(TARBALL) && !has('debootstrap')) return `no cached root at ${TARBALL} and debootstrap is not installed (apt-get install debootstrap)`;
  return undefined;
}

function buildTarball(): string | undefined {
  mkdirSync(CACHE, { recursive: true });
  const work = mkdtempSync(join(CACHE, 'build-'));
  try {
    // adduser is Priority: important, so not in minbase; every real Debian or Pi OS install has it.
    const run = spawnSync('debootstrap', ['--variant=minbase', '--include=adduser', 'bookworm', join(work, 'root'), MIRROR], {
      timeout: BUILD_TIMEOUT_MS,
      encoding: 'utf8',
    });
    if (run.status !== 0) {
      const why = run.error ? String(run.error.message) : (run.stderr || run.stdout).trim().split('\n').slice(-3).join(' / ');
      return `debootstrap of bookworm from ${MIRROR} did not finish: ${why}`;
    }
    // apt's caches are a third of the root and nothing here uses them.
    for (const sub of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
      execFileSync('find', [join(work, 'root', sub), '-type', 'f', '-delete']);
    }
    execFileSync('tar', ['-C', join(work, 'root'), '--numeric-owner', '-cf', `${TARBALL}.part`, '.']);
    renameSync(`${TARBALL}.part`, TARBALL);
    return undefined;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Unpacks a fresh root (building the cached one first if needed) with /proc mounted. */
export function freshDebianRoot(): RootResult {
  const unavailable = rootUnavailable();
  if (unavailable) return { skip: unavailable };
  if (!existsSync(TARBALL)) {
    const failed = buildTarball();
    if (failed) return { skip: failed };
  }
  const dir = mkdtempSync(join(tmpdir(), 'relaybox-root-'));
  execFileSync('tar', ['-C', dir, '--numeric-owner', '-xf', TARBALL]);
  // Node and dpkg look at /proc; without it (a container that forbids the mount) they mostly cope.
  const proc = spawnSync('mount', ['-t', 'proc', 'proc', join(dir, 'proc')]).status === 0;
  return {
    dir,
    cleanup: () => {
      if (proc) spawnSync('umount', ['-l', join(dir, 'proc')]);
      // Never recurse into a /proc that is still mounted.
      if (spawnSync('mountpoint', ['-q', join(dir, 'proc')]).status === 0) return;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Builds the .deb the way `make deb` does, fast (gzip -1, ./dist as built): its path. */
export function buildTestDeb(outDir: string): string {
  const repo = join(import.meta.dirname, '../..');
  const out = execFileSync(join(repo, 'deploy/build-deb.sh'), [outDir], {
    env: { ...process.env, RELAYBOX_PREBUILT_DIST: '1', DEB_COMPRESS: 'gzip', DEB_LEVEL: '1' },
    encoding: 'utf8',
    timeout: 240_000,
  });
  return out.trim().split('\n').at(-1)!;
}
