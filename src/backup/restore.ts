import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { extract, list, type ReadEntry } from 'tar';
import { countSpoolFile, spoolInUse, type SpoolCounts } from '../spool/backup.js';
import { spoolPath } from '../spool/db.js';
import { VERSION } from '../version.js';
import { BackupError, checkManifest, MANIFEST_ENTRY, type Manifest } from './manifest.js';
import { differs, modesFor, ownerFor, placeFile } from './place.js';
import { stagingDir } from './staging.js';

export interface RestoreOptions {
  archive: string;
  /** Where this box reads its configuration: the archived one is written there. */
  configPath: string;
  /** Replace a spool that holds messages, and files that differ from the archived ones. */
  force: boolean;
}

export interface RestoreSummary {
  manifest: Manifest;
  dataDir: string;
  /** What was there before and is now replaced (with --force). */
  replaced: { spool: SpoolCounts | null; files: string[] };
  /** Each restored file (the spool too): what it is and where it went. */
  placed: Array<{ what: string; to: string }>;
  /** The earlier configuration, kept when a different one replaced it. */
  keptConfig: string | undefined;
}

/**
 * Puts an archive of writeBackup onto a stopped box: the spool and the files of data_dir into the
 * data_dir the archived configuration names, the configuration to `configPath`, the files beside
 * it into that directory. Refuses, before it writes anything, an archive it cannot read, a box
 * whose spool is open (relaybox running), a spool holding messages and files that differ, unless
 * forced.
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreSummary> {
  const manifest = checkManifest(await readManifest(options.archive), VERSION);
  const dataDir = manifest.data_dir;
  const targets = new Map(manifest.files.map((f) => [f.entry, destination(f.entry, manifest, options.configPath)]));
  if (!targets.has('data/spool.db')) throw new BackupError('the archive lists no data/spool.db: it is damaged or not a relaybox backup');
  if (spoolInUse(dataDir)) {
    throw new BackupError(`relaybox is running on ${dataDir} (its spool is open): stop it first (systemctl stop relaybox), then restore`);
  }
  const spool = existsSync(spoolPath(dataDir)) ? countSpoolFile(spoolPath(dataDir)) : null;
  if (spool && spool.messages > 0 && !options.force) {
    throw new BackupError(`${spoolPath(dataDir)} holds ${spool.messages} message(s), ${spool.undelivered} of them undelivered: restore --force replaces them`);
  }

  await mkdir(dataDir, { recursive: true, mode: 0o750 });
  const staging = await stagingDir(dataDir, 'restore');
  try {
    await extract({ file: options.archive, cwd: staging, strict: true, filter: (path, entry) => targets.has(posix.normalize(path)) && (entry as ReadEntry).type === 'File' });
    for (const entry of targets.keys()) {
      if (!existsSync(join(staging, entry))) throw new BackupError(`the archive lacks ${entry}, which its manifest lists: it is damaged`);
    }
    countSpoolFile(join(staging, 'data/spool.db')); // throws on a file that is no SQLite database
    const changed: string[] = [];
    for (const [entry, to] of targets) if (entry !== 'data/spool.db' && (await differs(join(staging, entry), to))) changed.push(to);
    if (changed.length > 0 && !options.force) {
      throw new BackupError(`these files exist and differ from the archived ones: ${changed.join(', ')}; restore --force replaces them`);
    }
    const keptConfig = changed.includes(options.configPath) ? `${options.configPath}.before-restore` : undefined;
    if (keptConfig) await copyFile(options.configPath, keptConfig);

    const dataOwner = await ownerFor(dataDir);
    for (const [entry, to] of targets) {
      if (entry === 'data/spool.db') continue;
      const inConfig = entry.startsWith('config/');
      if (inConfig) await mkdir(dirname(options.configPath), { recursive: true, mode: 0o750 });
      const owner = inConfig ? await ownerFor(dirname(options.configPath)) : dataOwner;
      await placeFile({ staged: join(staging, entry), to, modes: modesFor(entry), owner });
    }
    // A WAL left by the old spool would be replayed into the new one: it goes first.
    await rm(`${spoolPath(dataDir)}-wal`, { force: true });
    await rm(`${spoolPath(dataDir)}-shm`, { force: true });
    await placeFile({ staged: join(staging, 'data/spool.db'), to: spoolPath(dataDir), modes: modesFor('data/spool.db'), owner: dataOwner });
    const placed = manifest.files.map((f) => ({ what: f.what, to: targets.get(f.entry)! }));
    return { manifest, dataDir, replaced: { spool, files: changed }, placed, keptConfig };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Reads manifest.json out of the archive without writing anything. */
async function readManifest(archive: string): Promise<string> {
  if (!existsSync(archive)) throw new BackupError(`${archive}: no such file`);
  let text: string | undefined;
  const reading: Promise<void>[] = [];
  try {
    await list({
      file: archive,
      strict: true,
      filter: (path) => path === MANIFEST_ENTRY,
      onReadEntry: (entry) => {
        reading.push(entry.concat().then((bytes) => void (text = bytes.toString('utf8'))));
      },
    });
    await Promise.all(reading);
  } catch (err) {
    throw new BackupError(`${archive} is not a relaybox backup (${(err as Error).message})`);
  }
  if (text === undefined) throw new BackupError(`${archive} is not a relaybox backup: it has no ${MANIFEST_ENTRY}`);
  return text;
}

/** Where an archive entry goes; anything but a plain path under config/ or data/ is refused. */
function destination(entry: string, manifest: Manifest, configPath: string): string {
  const normal = posix.normalize(entry);
  const [top, ...rest] = normal.split('/');
  if (normal !== entry || rest.length === 0 || rest.includes('..') || (top !== 'config' && top !== 'data')) {
    throw new BackupError(`the archive lists a file outside config/ and data/ (${entry}): refused`);
  }
  if (top === 'data') return join(manifest.data_dir, ...rest);
  const configEntry = manifest.files.find((f) => f.what === 'configuration')?.entry;
  return entry === configEntry ? configPath : join(dirname(configPath), ...rest);
}
