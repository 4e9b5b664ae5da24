import { randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { syncFile } from './staging.js';

export interface Owner {
  uid: number;
  gid: number;
}

/**
 * The mode a restored file gets, by what it is rather than what the archive says: tokens and keys
 * 0600 in 0700 directories (as src/oauth/files.ts and src/ingress/tls.ts make them), the
 * configuration and its secrets 0640 (root:relaybox on a packaged box, deploy/install.sh).
 */
export function modesFor(entry: string): { file: number; dir: number } {
  if (entry.startsWith('config/')) return { file: 0o640, dir: 0o750 };
  if (entry === 'data/spool.db') return { file: 0o640, dir: 0o750 };
  if (entry === 'data/tls/cert.pem') return { file: 0o644, dir: 0o700 };
  return { file: 0o600, dir: entry.startsWith('data/oauth/') || entry.startsWith('data/tls/') ? 0o700 : 0o750 };
}

/**
 * Run as root, restored files go to the owner of the directory they land in — data_dir belongs
 * to the service's user, /etc/relaybox to root:relaybox — so that the service can read them.
 */
export async function ownerFor(dir: string): Promise<Owner | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const info = await stat(dir);
  return { uid: info.uid, gid: info.gid };
}

/** True when `path` exists and holds other bytes than `staged`. */
export async function differs(staged: string, path: string): Promise<boolean> {
  const existing = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  return existing !== null && !existing.equals(await readFile(staged));
}

/**
 * Moves a staged file to `to` with its mode and owner set before it appears there, fsynced, by a
 * rename: a power cut leaves the old file or the new one. Across file systems (the configuration
 * in /etc, data_dir on another disk) it is copied beside `to` first.
 */
export async function placeFile(options: { staged: string; to: string; modes: { file: number; dir: number }; owner: Owner | undefined }): Promise<void> {
  const { staged, to, modes, owner } = options;
  const dir = dirname(to);
  const made = await mkdir(dir, { recursive: true, mode: modes.dir });
  if (made !== undefined || modes.dir === 0o700) await chmod(dir, modes.dir);
  if (made !== undefined && owner) await chown(dir, owner.uid, owner.gid);
  // The mode first: a copy across file systems takes it along, so no moment is more readable.
  await chmod(staged, modes.file);
  const source = await beside(staged, to);
  try {
    if (owner) await chown(source, owner.uid, owner.gid);
    await syncFile(source);
    await rename(source, to);
  } catch (err) {
    await rm(source, { force: true });
    throw err;
  }
}

/** The staged file moved (or, across file systems, copied) into the directory of `to`. */
async function beside(staged: string, to: string): Promise<string> {
  const tmp = join(dirname(to), `.${basename(to)}.${randomBytes(4).toString('hex')}.restore`);
  try {
    await rename(staged, tmp);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(staged, tmp);
  }
  return tmp;
}
