import type { SpoolDb } from './db.js';
import { WalSync } from './walSync.js';

interface Pending {
  work: () => unknown;
  durable: boolean;
  resolve: (value: any) => void;
  reject: (err: unknown) => void;
}

/** How long a write that needs no fsync may wait for company (or for the next synced commit). */
const LAZY_MS = 20;

/**
 * Batches writes into shared transactions, because on an SD card the fsync, not the SQL, is the
 * cost. Commits never fsync on the event loop: `durable` writes (a message about to be answered
 * 250) commit in the next turn of the loop and resolve once a WAL sync from the thread pool that
 * started after their commit has finished. While one sync runs, new durable writes queue up and
 * share the next commit and the next sync — ten devices sending at once cost one fsync, and a
 * lone scanner's 250 waits for nothing else. `lazy` writes (delivery outcomes: losing one to a
 * power cut means a resend, never a loss) ride along with the next commit, or commit within
 * LAZY_MS. Each promise settles once its write is committed (and, if durable, synced).
 */
export class GroupCommit {
  private pending: Pending[] = [];
  private immediate: NodeJS.Immediate | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Committed durable writes waiting for the next WAL sync. */
  private unsynced: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  /** Those the running sync will settle. */
  private inFlight: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  private syncing = false;
  private readonly wal: WalSync | null;

  /** Prepared once: `db.pragma()` would prepare the statement again on every commit. */
  private readonly pragmas;

  constructor(private readonly db: SpoolDb) {
    this.wal = WalSync.open(db.name);
    const busyTimeout = db.pragma('busy_timeout', { simple: true }) as number;
    this.pragmas = {
      FULL: db.prepare('PRAGMA synchronous = FULL'),
      NORMAL: db.prepare('PRAGMA synchronous = NORMAL'),
      noWait: db.prepare('PRAGMA busy_timeout = 0'),
      wait: db.prepare(`PRAGMA busy_timeout = ${busyTimeout}`),
    };
  }

  durable<T>(work: () => T): Promise<T> {
    // While a sync runs, its end commits whatever queued meanwhile: one commit per sync.
    if (!this.syncing) this.immediate ??= setImmediate(() => this.commitQueued(true));
    return this.enqueue(work, true);
  }

  lazy<T>(work: () => T): Promise<T> {
    this.timer ??= setTimeout(() => this.commitQueued(true), LAZY_MS);
    return this.enqueue(work, false);
  }

  /** Commits whatever is queued now, waiting for the write lock if need be; durable writes resolve after the sync that follows. */
  flush(): void {
    this.commitQueued(false);
  }

  /**
   * `nonBlocking`: when another connection (the other thread, the CLI) holds the write lock, try
   * again in a moment instead of letting SQLite's busy handler put the whole thread to sleep.
   */
  private commitQueued(nonBlocking: boolean): void {
    clearImmediate(this.immediate);
    clearTimeout(this.timer);
    this.immediate = this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const sync = batch.some((item) => item.durable);
    // Without a WAL file of our own to sync, SQLite fsyncs.
    const committed = this.commit(batch, sync && !this.wal ? 'FULL' : 'NORMAL', nonBlocking);
    if (!committed) {
      this.pending = batch.concat(this.pending);
      this.timer = setTimeout(() => this.commitQueued(true), 0);
      return;
    }
    if (sync && this.wal && !this.syncing) this.startSync();
  }

  /** Commits and syncs everything now, on this thread, then closes the database. */
  close(): void {
    this.flush();
    const waiting = [...this.inFlight, ...this.unsynced];
    this.unsynced = [];
    this.inFlight = [];
    try {
      if (waiting.length > 0) this.wal?.syncNow();
      for (const w of waiting) w.resolve();
    } catch (err) {
      for (const w of waiting) w.reject(err);
    }
    this.db.close();
    this.wal?.close();
  }

  /** False when `nonBlocking` and the write lock is taken: nothing was done. */
  private commit(batch: Pending[], synchronous: 'FULL' | 'NORMAL', nonBlocking: boolean): boolean {
    this.pragmas[synchronous].run();
    if (nonBlocking) this.pragmas.noWait.run();
    try {
      const results: unknown[] = [];
      try {
        // IMMEDIATE takes the write lock first: a busy lock shows before any work is done.
        this.db
          .transaction(() => {
            for (const item of batch) results.push(item.work());
          })
          .immediate();
      } catch (err) {
        if (nonBlocking && isBusy(err)) return false;
        // One failing write must not take the others down with it: commit them one by one.
        this.pragmas.wait.run();
        for (const item of batch) this.runAlone(item, synchronous);
        return true;
      }
      batch.forEach((item, i) => this.settle(item, results[i], synchronous));
      return true;
    } finally {
      this.pragmas.FULL.run();
      this.pragmas.wait.run();
    }
  }

  private runAlone(item: Pending, synchronous: 'FULL' | 'NORMAL'): void {
    let result: unknown;
    try {
      result = this.db.transaction(item.work)();
    } catch (err) {
      item.reject(err);
      return;
    }
    this.settle(item, result, synchronous);
  }

  private settle(item: Pending, result: unknown, synchronous: 'FULL' | 'NORMAL'): void {
    if (!item.durable || synchronous === 'FULL') item.resolve(result);
    else this.unsynced.push({ resolve: () => item.resolve(result), reject: item.reject });
  }

  private startSync(): void {
    const waiting = (this.inFlight = this.unsynced);
    this.unsynced = [];
    this.syncing = true;
    this.wal!.sync((err) => {
      this.syncing = false;
      this.inFlight = [];
      // After close() these are settled already (and the database is gone): nothing to do.
      if (!this.db.open) return;
      for (const w of waiting) err ? w.reject(err) : w.resolve();
      if (this.pending.some((item) => item.durable)) this.commitQueued(true);
      else if (this.unsynced.length > 0) this.startSync();
    });
  }

  private enqueue<T>(work: () => T, durable: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => this.pending.push({ work, durable, resolve, reject }));
  }
}

function isBusy(err: unknown): boolean {
  return String((err as { code?: unknown })?.code ?? '').startsWith('SQLITE_BUSY');
}
