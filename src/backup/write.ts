import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { create as createTar } from 'tar';
import { copySpool } from '../spool/backup.js';
import { spoolPath } from '../spool/db.js';
import { VERSION } from '../version.js';
import { backupContents, type ContentsOptions } from './contents.js';
import { BACKUP_FORMAT, BackupError, MANIFEST_ENTRY, type Manifest } from './manifest.js';
import { stagingDir, syncFile } from './staging.js';

export interface BackupOptions extends Omit<ContentsOptions, 'configText'> {
  /** The archive to write; replaced atomically when it exists. */
  out: string;
}

export interface BackupSummary {
  manifest: Manifest;
  bytes: number;
}

/**
 * Writes one archive (see manifest.ts) of a box that may be running. Everything is gathered in a
 * private directory inside data_dir (the spool copy can be large: not in a RAM-backed /tmp), then
 * packed into `out`, which is created with mode 0600 — it holds secrets — and renamed into place
 * complete, so a failed backup never leaves half an archive under the name.
 */
export async function writeBackup(options: BackupOptions): Promise<BackupSummary> {
  const { configPath, dataDir, out } = options;
  const configText = await readFile(configPath, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new BackupError(`cannot read the configuration ${configPath}: ${err.code ?? err.message}`);
  });
  if (!existsSync(spoolPath(dataDir))) throw new BackupError(`there is no spool in ${dataDir}: relaybox has not run with this configuration yet`);
  const staging = await stagingDir(dataDir, 'backup');
  const partial = join(dirname(out), `.${randomBytes(6).toString('hex')}.partial`);
  try {
    await mkdir(join(staging, 'data'), { mode: 0o700 });
    const spool = await copySpool(dataDir, join(staging, 'data', 'spool.db'));
    const { files, leftOut } = backupContents({ ...options, configText });
    for (const file of files) {
      const dest = join(staging, file.entry);
      await mkdir(dirname(dest), { recursive: true, mode: 0o700 });
      // The configuration as read above, so the manifest and the archive describe the same text.
      if (file.from === configPath) await writeFile(dest, configText, { mode: 0o600 });
      else await copyFile(file.from, dest);
    }
    const manifest: Manifest = {
      format: BACKUP_FORMAT,
      relaybox_version: VERSION,
      created_at: new Date().toISOString(),
      hostname: hostname(),
      config_file: configPath,
      data_dir: dataDir,
      spool: { schema_version: spool.schemaVersion, messages: spool.messages, undelivered: spool.undelivered },
      files: [{ entry: 'data/spool.db', from: join(dataDir, 'spool.db'), what: 'spool (online SQLite backup)' }, ...files],
      left_out: leftOut,
    };
    await writeFile(join(staging, MANIFEST_ENTRY), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
    const pack = createTar({ cwd: staging, gzip: true, portable: true }, [MANIFEST_ENTRY, ...manifest.files.map((f) => f.entry)]);
    await pipeline(pack, createWriteStream(partial, { flags: 'wx', mode: 0o600 }));
    await syncFile(partial);
    await rename(partial, out);
    return { manifest, bytes: (await stat(out)).size };
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
