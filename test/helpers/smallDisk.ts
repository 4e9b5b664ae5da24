import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, onTestFinished } from 'vitest';

// A real small filesystem: a 20 MB tmpfs, as on the shelf. Mounting needs root (CI runs as root).
export const isRoot = process.getuid?.() === 0;
const MB = 1024 * 1024;
let mount = '';
let dirs = 0;

/** Mounts the tmpfs for the describe block it is called in (needs root: skip the block otherwise). */
export function useSmallDisk(): void {
  beforeAll(() => {
    mount = mkdtempSync(join(tmpdir(), 'relaybox-diskfull-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', mount]);
  });
  afterAll(() => {
    if (!mount) return;
    execFileSync('umount', ['-l', mount]);
    rmSync(mount, { recursive: true, force: true });
    mount = '';
  });
}

/** A fresh data_dir on the small filesystem, removed after the test (after its relaybox stopped). */
export function smallDataDir(): string {
  const dir = join(mount, `data-${++dirs}`);
  mkdirSync(dir);
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const freeBytes = () => statfsSync(mount).bavail * statfsSync(mount).bsize;

/** Something else takes every byte left (logs filling an SD card); removed after the test. */
export function fillDisk(): string {
  const filler = join(mount, `filler-${dirs}`);
  onTestFinished(() => rmSync(filler, { force: true }));
  // relaybox may write meanwhile: ask for a little less each time until it fits.
  for (let slack = 0; ; slack += 64 * 1024) {
    try {
      execFileSync('fallocate', ['-l', String(Math.max(4096, freeBytes() - slack)), filler], { stdio: 'ignore' });
      break;
    } catch (err) {
      if (slack > 2 * MB) throw err;
    }
  }
  return filler;
}
