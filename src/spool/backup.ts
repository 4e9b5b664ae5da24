import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { openSpool, spoolPath } from './db.js';

/** What a spool file holds: enough to say what a backup carries or a restore would replace. */
export interface SpoolCounts {
  schemaVersion: number;
  messages: number;
  /** Messages accepted and not yet delivered, failed or dropped: the mail a restore must not lose. */
  undelivered: number;
}

/** Every page in one step: better-sqlite3 clamps the step to this. */
const ALL_PAGES = 0x7fffffff;

/**
 * An online backup of the spool into `dest` (a new file) while relaybox goes on taking and
 * delivering mail. SQLite's backup API copies page by page; a write by another connection between
 * two steps would start it over, so the whole file is copied in one step: one read transaction,
 * one consistent snapshot with everything committed before it (the WAL included). WAL lets the
 * service keep writing meanwhile. The copy runs on the caller's thread: the console runs it off
 * the service's thread (src/backup/offThread.ts).
 */
export async function copySpool(dataDir: string, dest: string): Promise<SpoolCounts> {
  const source = openSpool(dataDir, { readonly: true });
  try {
    await source.backup(dest, { progress: () => ALL_PAGES });
  } finally {
    source.close();
  }
  return countSpoolFile(dest);
}

/** The counts of a spool file, opened read-only; a file that is no SQLite database throws. */
export function countSpoolFile(file: string): SpoolCounts {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const schemaVersion = db.pragma('user_version', { simple: true }) as number;
    if (schemaVersion === 0) return { schemaVersion, messages: 0, undelivered: 0 };
    const row = db
      .prepare(`SELECT count(*) AS messages, count(*) FILTER (WHERE state IN ('queued', 'delivering', 'deferred')) AS undelivered FROM messages`)
      .get() as { messages: number; undelivered: number };
    return { schemaVersion, ...row };
  } finally {
    db.close();
  }
}

/**
 * True while a process has the spool of `dataDir` open — a running relaybox. Every connection to
 * a WAL database keeps a shared lock on the file for as long as it is open; an exclusive lock can
 * be had only when no other connection exists, in this process or any other. Reliable where a
 * pidfile is not: the lock goes with the process, even after a crash or a SIGKILL.
 */
export function spoolInUse(dataDir: string): boolean {
  const file = spoolPath(dataDir);
  if (!existsSync(file)) return false;
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 0');
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    db.exec('ROLLBACK');
    return false;
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_BUSY') return true;
    throw err;
  } finally {
    db.close();
  }
}
