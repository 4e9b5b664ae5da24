import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** `<data_dir>/oauth`: refresh tokens and cached access tokens, readable by relaybox's user only. */
export function oauthDir(dataDir: string): string {
  return join(dataDir, 'oauth');
}

/** The access token cache that lets a restart skip the token endpoint. */
export function tokenCachePath(dataDir: string, upstream: string): string {
  return join(oauthDir(dataDir), `${upstream}.token.json`);
}

/** The refresh token `relaybox oauth google|microsoft` stored (or a rotated one Microsoft handed back). */
export function refreshTokenPath(dataDir: string, upstream: string): string {
  return join(oauthDir(dataDir), `${upstream}.refresh.json`);
}

/** The parsed file, or null when it is missing or unreadable (a cache is worth nothing then). */
export async function readJsonFile(path: string): Promise<Record<string, unknown> | null> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Writes secrets: the directory is made 0700 and the file 0600 from its first byte (never
 * world-readable, not even for a moment), fsynced and renamed into place so that a power cut leaves
 * the old file or the new one, never half of one. Run as root (`sudo relaybox oauth …`), the files
 * are handed to the owner of data_dir so that the service's own user can read them.
 */
export async function writePrivateJson(path: string, value: unknown): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await giveToDataDirOwner(dir, tmp);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

async function giveToDataDirOwner(dir: string, file: string): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const owner = await stat(dirname(dir));
  if (owner.uid === 0) return;
  await chown(dir, owner.uid, owner.gid);
  await chown(file, owner.uid, owner.gid);
}

export async function removeFile(path: string): Promise<void> {
  await rm(path, { force: true });
}
