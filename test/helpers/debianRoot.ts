import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * A fresh minimal Debian 12 root to install the .deb into, as on a stock box, for this machine's
 * architecture or, through qemu-user, for arm64 or armhf. deploy/debian-root.sh builds one once
 * per architecture (debootstrap minbase + adduser: about a minute and a half for amd64, four for
 * arm64 under qemu) and keeps it as a tar file; each test unpacks its own copy in seconds.
 * Environment:
 *   RELAYBOX_TEST_ROOT_CACHE  where the tars are kept (default /var/cache/relaybox, shared with
 *                             deploy/image/build-image.sh)
 *   RELAYBOX_DEBIAN_MIRROR    default http://deb.debian.org/debian
 */
const REPO = join(import.meta.dirname, '../..');
const CACHE = process.env.RELAYBOX_TEST_ROOT_CACHE ?? '/var/cache/relaybox';
const BUILD_TIMEOUT_MS = 15 * 60_000;

export const HOST_ARCH = ({ x64: 'amd64', arm64: 'arm64', arm: 'armhf' } as Record<string, string>)[process.arch] ?? process.arch;

/** A package for another architecture: its qemu, cross compiler, ELF machine, Depends (names, in order). */
export const FOREIGN: Record<string, { qemu: string; triplet: string; machine: number; file: RegExp; depends: string[] }> = {
  arm64: { qemu: 'aarch64', triplet: 'aarch64-linux-gnu', machine: 183, file: /ELF 64-bit LSB .*ARM aarch64/, depends: ['adduser', 'libc6', 'libgcc-s1', 'libstdc++6'] },
  armhf: { qemu: 'arm', triplet: 'arm-linux-gnueabihf', machine: 40, file: /ELF 32-bit LSB .*ARM, EABI5/, depends: ['adduser', 'libatomic1', 'libc6', 'libgcc-s1', 'libstdc++6'] },
};

export type RootResult = { dir: string; cleanup: () => void } | { skip: string };

function has(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

/** The cached root: minbase + adduser (every real Debian or Pi OS has it), + extra packages. */
const tarball = (arch: string, extra: string[] = []) => join(CACHE, `bookworm-${arch}-minbase${extra.map((p) => `+${p}`).join('')}.tar`);

/** Why this machine cannot run the chroot test for arch, or undefined when it can. */
export function rootUnavailable(arch = HOST_ARCH, extra: string[] = []): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (chroot, dpkg, mount)';
  if (!has('chroot') || !has('dpkg-deb')) return 'needs chroot and dpkg-deb (a Debian machine)';
  if (!existsSync(tarball(arch, extra)) && !has('debootstrap')) return `no cached root at ${tarball(arch, extra)} and debootstrap is not installed (apt-get install debootstrap)`;
  if (arch !== HOST_ARCH) {
    const foreign = FOREIGN[arch];
    if (!foreign) return `no cross build for ${arch}`;
    if (!existsSync(`/proc/sys/fs/binfmt_misc/qemu-${foreign.qemu}`) && !existsSync(`/usr/lib/binfmt.d/qemu-${foreign.qemu}.conf`)) {
      return 'qemu-user-static is not installed (apt-get install qemu-user-static)';
    }
    if (!has(`${foreign.triplet}-g++`)) return `${foreign.triplet}-g++ is not installed (apt-get install g++-${foreign.triplet})`;
  }
  return undefined;
}

/** Unpacks a fresh root for arch (building the cached one first if needed) with /proc mounted. */
export function freshDebianRoot(arch = HOST_ARCH, extra: string[] = []): RootResult {
  const unavailable = rootUnavailable(arch, extra);
  if (unavailable) return { skip: unavailable };
  const made = spawnSync(join(REPO, 'deploy/debian-root.sh'), [arch, tarball(arch, extra), 'adduser', ...extra], { encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
  if (made.status !== 0) {
    const why = made.error ? made.error.message : made.stderr.trim().split('\n').slice(-3).join(' / ');
    return { skip: `deploy/debian-root.sh ${arch} did not finish: ${why}` };
  }
  if (arch !== HOST_ARCH) {
    // A cached root skips debian-root.sh's own registration: the chroot's programs need it.
    const binfmt = spawnSync(join(REPO, 'deploy/binfmt.sh'), [arch], { encoding: 'utf8' });
    if (binfmt.status !== 0) return { skip: binfmt.stderr.trim() || `deploy/binfmt.sh ${arch} failed` };
  }
  const dir = mkdtempSync(join(tmpdir(), `relaybox-root-${arch}-`));
  execFileSync('tar', ['-C', dir, '--numeric-owner', '-xf', tarball(arch, extra)]);
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

/**
 * Builds the .deb the way `make deb [ARCH=...]` does, fast (gzip -1, ./dist as built): its path.
 * Another architecture's first build cross-compiles better-sqlite3 (about two minutes, then cached).
 */
export function buildTestDeb(outDir: string, arch?: string): string {
  const out = execFileSync(join(REPO, 'deploy/build-deb.sh'), [...(arch ? ['--arch', arch] : []), outDir], {
    env: { ...process.env, RELAYBOX_PREBUILT_DIST: '1', DEB_COMPRESS: 'gzip', DEB_LEVEL: '1' },
    encoding: 'utf8',
    timeout: arch && arch !== HOST_ARCH ? 12 * 60_000 : 240_000,
  });
  return out.trim().split('\n').at(-1)!;
}

export interface ServedInRoot {
  port: number;
  lines: string[];
  /** SIGTERM, then the exit code. */
  stop: () => Promise<number | null>;
}

/**
 * `relaybox serve` as the installed package runs it, inside ROOT: the shipped configuration with
 * SMTP and the console moved to free loopback ports (the shipped one listens on :25 of the host).
 */
export async function serveInRoot(root: string, startMs: number): Promise<ServedInRoot> {
  const conf = '/etc/relaybox/test.yaml';
  writeFileSync(
    join(root, conf),
    readFileSync(join(root, 'etc/relaybox/relaybox.yaml'), 'utf8')
      .replace('listen: ["0.0.0.0:25", "0.0.0.0:587"]', 'listen: ["127.0.0.1:0"]')
      .replace('listen: "127.0.0.1:8025"', 'listen: "127.0.0.1:0"')
      .replace('# hostname: relaybox.example.com', 'hostname: relaybox.test.example'),
  );
  execFileSync('chroot', [root, 'chown', 'root:relaybox', conf]);
  const child = spawn('chroot', [root, '/usr/bin/relaybox', 'serve', '--config', conf], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  const lines: string[] = [];
  createInterface({ input: child.stderr }).on('line', (l) => lines.push(l));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const stop = () => {
    child.kill('SIGTERM');
    return exited;
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`relaybox did not start:\n${lines.join('\n')}`)), startMs);
      child.on('exit', (code) => reject(new Error(`relaybox exited with ${code}:\n${lines.join('\n')}`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        lines.push(line);
        const m = /"smtp":\["[^"]*:(\d+)"/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
    return { port, lines, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
