import type { SpoolDb } from './db.js';

interface Pending {
  work: () => unknown;
  resolve: (value: any) => void;
  reject: (err: unknown) => void;
}

/** How long a write that needs no fsync may wait for company (or for the next synced commit). */
const LAZY_MS = 20;
/** A synced commit this soon after the last one means devices are sending at once. */
const BUSY_MS = 3;

/**
 * Batches writes into shared transactions, because on an SD card the fsync, not the SQL, is the
 * cost. `durable` writes (a message about to be answered 250) commit in the next turn of the event
 * loop with an fsync, so ten devices sending at once share one. `lazy` writes (delivery outcomes:
 * losing one to a power cut means a resend, never a loss) ride along with the next durable commit,
 * or commit without an fsync within LAZY_MS. Each promise settles once its write is committed.
 */
export class GroupCommit {
  private pending: Pending[] = [];
  private durableQueued = false;
  private immediate: NodeJS.Immediate | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busyTimer: NodeJS.Timeout | undefined;
  private lastDurableAt = -Infinity;

  constructor(private readonly db: SpoolDb) {}

  durable<T>(work: () => T): Promise<T> {
    this.durableQueued = true;
    if (!this.immediate && !this.busyTimer) {
      // Busy (the last synced commit was moments ago): wait a millisecond for company, since
      // more devices are mid-message. Idle: commit now, a lone scanner's 250 waits for nothing.
      if (performance.now() - this.lastDurableAt < BUSY_MS) this.busyTimer = setTimeout(() => this.flush(), 1);
      else this.immediate = setImmediate(() => this.flush());
    }
    return this.enqueue(work);
  }

  lazy<T>(work: () => T): Promise<T> {
    this.timer ??= setTimeout(() => this.flush(), LAZY_MS);
    return this.enqueue(work);
  }

  /** Commits whatever is queued now; also called before the database closes. */
  flush(): void {
    clearImmediate(this.immediate);
    clearTimeout(this.timer);
    clearTimeout(this.busyTimer);
    this.immediate = this.timer = this.busyTimer = undefined;
    const batch = this.pending;
    const sync = this.durableQueued;
    this.pending = [];
    this.durableQueued = false;
    if (batch.length === 0) return;
    if (sync) this.lastDurableAt = performance.now();
    this.db.pragma(`synchronous = ${sync ? 'FULL' : 'NORMAL'}`);
    try {
      const results: unknown[] = [];
      try {
        this.db.transaction(() => {
          for (const item of batch) results.push(item.work());
        })();
      } catch {
        // One failing write must not take the others down with it: commit them one by one.
        for (const item of batch) this.runAlone(item);
        return;
      }
      batch.forEach((item, i) => item.resolve(results[i]));
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  private enqueue<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => this.pending.push({ work, resolve, reject }));
  }

  private runAlone(item: Pending): void {
    try {
      item.resolve(this.db.transaction(item.work)());
    } catch (err) {
      item.reject(err);
    }
  }
}
