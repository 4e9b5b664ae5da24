import { isAbsolute } from 'node:path';
import { SCHEMA_VERSION } from '../spool/db.js';

/**
 * The archive's own format: a gzipped tar holding `manifest.json`, `config/` (the configuration
 * file and the files it names beside it) and `data/` (what belongs in data_dir). A change that an
 * older relaybox could not restore correctly raises this number.
 */
export const BACKUP_FORMAT = 1;

export const MANIFEST_ENTRY = 'manifest.json';

/** One file in the archive: `entry` is its path inside, `from` where it was taken from. */
export interface ArchivedFile {
  entry: string;
  from: string;
  what: string;
}

/** A file the configuration names that the archive does not carry, and why. */
export interface LeftOut {
  from: string;
  key: string;
  why: string;
}

export interface Manifest {
  format: number;
  relaybox_version: string;
  created_at: string;
  hostname: string;
  config_file: string;
  data_dir: string;
  spool: { schema_version: number; messages: number; undelivered: number };
  files: ArchivedFile[];
  left_out: LeftOut[];
}

/** A backup or restore refused for a reason the person can act on; the text says what to do. */
export class BackupError extends Error {}

/** The manifest of an archive, or a refusal: not a relaybox backup, or one this relaybox cannot restore. */
export function checkManifest(text: string, ourVersion: string): Manifest {
  let manifest: Partial<Manifest>;
  try {
    manifest = JSON.parse(text) as Partial<Manifest>;
  } catch {
    throw new BackupError('not a relaybox backup: its manifest.json is not JSON');
  }
  if (typeof manifest?.format !== 'number' || typeof manifest.data_dir !== 'string' || !isAbsolute(manifest.data_dir) || !Array.isArray(manifest.files) || !manifest.spool) {
    throw new BackupError('not a relaybox backup: its manifest.json lacks format, data_dir, spool or files');
  }
  const from = `relaybox ${manifest.relaybox_version ?? '(unknown version)'}`;
  if (manifest.format > BACKUP_FORMAT) {
    throw new BackupError(`this archive was made by ${from} in backup format ${manifest.format}; relaybox ${ourVersion} reads format ${BACKUP_FORMAT} at most: upgrade relaybox, then restore`);
  }
  if (manifest.spool.schema_version > SCHEMA_VERSION) {
    throw new BackupError(`the spool in this archive (made by ${from}) has schema version ${manifest.spool.schema_version}; relaybox ${ourVersion} knows ${SCHEMA_VERSION}: upgrade relaybox, then restore`);
  }
  return manifest as Manifest;
}
