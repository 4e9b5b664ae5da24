import { closeSync, fdatasync, fdatasyncSync, fsyncSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Makes committed WAL frames durable from libuv's thread pool, so the event loop keeps parsing
 * SMTP while the disk flushes (5–20 ms on an SD card). Commits run with synchronous=NORMAL (no
 * fsync of SQLite's own); everything committed before `sync` is called is on disk when it calls
 * back — the same guarantee synchronous=FULL gives, shared by every commit that came before.
 *
 * The descriptor stays open until the database is closed: closing any descriptor of a file drops
 * the process's POSIX locks on it, and SQLite's are not ours to drop.
 */
export class WalSync {
  private fd: number | null;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** For a WAL-mode database file; null for one that has no WAL (in memory, read-only). */
  static open(dbPath: string): WalSync | null {
    if (!dbPath || dbPath === ':memory:') return null;
    let fd: number;
    try {
      fd = openSync(`${dbPath}-wal`, 'r');
    } catch {
      return null;
    }
    // The WAL file was created at start; its directory entry must be durable too, once.
    syncDirectory(dirname(dbPath));
    return new WalSync(fd);
  }

  sync(done: (err: Error | null) => void): void {
    if (this.fd === null) return done(new Error('spool is closed'));
    fdatasync(this.fd, (err) => done(err));
  }

  syncNow(): void {
    if (this.fd !== null) fdatasyncSync(this.fd);
  }

  /** After the database is closed. */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; SQLite itself ignores that too.
  }
}
