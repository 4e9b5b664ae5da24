import { mkdtemp, open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Names in data_dir that only a backup, a restore or a console download makes. */
const OURS = /^\.(backup|restore|download)-/;
const DAY_MS = 86_400_000;

/**
 * A private (0700) directory in data_dir for a backup or restore at work: on the spool's disk, not
 * in a /tmp that is memory on a Pi. What a crash or a power cut left of earlier ones goes first
 * (none runs for a day), so that an SD card does not keep a dead copy of the spool for ever.
 */
export async function stagingDir(dataDir: string, purpose: 'backup' | 'restore'): Promise<string> {
  const dayAgo = Date.now() - DAY_MS;
  for (const name of await readdir(dataDir)) {
    if (!OURS.test(name)) continue;
    const info = await stat(join(dataDir, name)).catch(() => null);
    if (info && info.mtimeMs < dayAgo) await rm(join(dataDir, name), { recursive: true, force: true });
  }
  return mkdtemp(join(dataDir, `.${purpose}-`));
}

/** fsync a file: what is renamed into place after it must be on disk first. */
export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
