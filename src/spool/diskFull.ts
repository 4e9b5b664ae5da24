/** Telling a full disk from other write failures, waiting it out, making room. */
import { dirname } from 'node:path';
import { openSpool, type SpoolDb } from './db.js';
import { releaseReserve } from './reserve.js';
import type { SpoolRows } from './rows.js';

/** SQLite says SQLITE_FULL when the filesystem said ENOSPC (or the file hit its size limit). */
export function isDiskFull(err: unknown): boolean {
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  return code === 'SQLITE_FULL' || code === 'ENOSPC';
}

const FIRST_WAIT_MS = 1_000;
const MAX_WAIT_MS = 30_000;

/**
 * Runs `write` until it succeeds, again 1 s, 2 s, … 30 s apart while it fails only for want of
 * space. Any other error, or `stopped()`, ends it with the error. The waits do not keep a process
 * or thread alive: one that ends meanwhile leaves the write undone, as a crash would.
 */
export async function retryWhileFull<T>(write: () => Promise<T>, options: { stopped: () => boolean; onFull?: () => void }): Promise<T> {
  for (let wait = FIRST_WAIT_MS; ; wait = Math.min(wait * 2, MAX_WAIT_MS)) {
    try {
      return await write();
    } catch (err) {
      if (!isDiskFull(err) || options.stopped()) throw err;
      options.onFull?.();
      await new Promise((resolve) => setTimeout(resolve, wait).unref());
      if (options.stopped()) throw err; // closed meanwhile: left undone, as a crash would leave it
    }
  }
}

/**
 * After a write failed for want of space: gives up the reserve (reserve.ts) and lets SQLite copy
 * its write-ahead log back into the spool, so that the log starts over instead of having to grow.
 */
export function makeRoom(db: SpoolDb): void {
  if (db.name && db.name !== ':memory:') releaseReserve(dirname(db.name));
  try {
    if (db.open) db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Nothing more to do here; the next write tries again.
  }
}

/** Opens the spool; on a disk too full even for that (the WAL index, the log), frees the reserve and tries once more. */
export function openSpoolMakingRoom(dataDir: string): SpoolDb {
  try {
    return openSpool(dataDir);
  } catch (err) {
    const code = String((err as { code?: unknown } | null)?.code ?? '');
    if (!(isDiskFull(err) || code === 'SQLITE_IOERR_SHMSIZE' || code === 'SQLITE_IOERR_WRITE') || !releaseReserve(dataDir)) throw err;
    return openSpool(dataDir);
  }
}

/** Partial bodies the disk had no room to delete: deleted again every few seconds until it works. */
export class LeftoverBodies {
  private readonly ids = new Set<number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: SpoolDb,
    private readonly rows: SpoolRows,
  ) {}

  add(id: number): void {
    this.ids.add(id);
    this.timer ??= setInterval(() => this.sweep(), 5_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sweep(): void {
    try {
      this.db.transaction(() => {
        for (const id of this.ids) {
          if (this.rows.stateOf(id) !== 'receiving') continue;
          this.rows.deleteBody(id);
          this.rows.sql(`DELETE FROM messages WHERE id = ?`).run(id);
        }
      })();
    } catch {
      makeRoom(this.db);
      return; // next time
    }
    this.ids.clear();
    this.stop();
  }
}
