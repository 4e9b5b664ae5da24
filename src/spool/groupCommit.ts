import type { SpoolDb } from './db.js';

interface Pending {
  work: () => unknown;
  resolve: (value: any) => void;
  reject: (err: unknown) => void;
}

/**
 * Commits every write queued in one turn of the event loop as one transaction, so ten devices
 * sending at once share one fsync instead of paying ten. Each caller's promise settles only
 * after the commit that holds its write is on disk.
 */
export class GroupCommit {
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(private readonly db: SpoolDb) {}

  run<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ work, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits whatever is queued now; also called before the database closes. */
  flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
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
  }

  private runAlone(item: Pending): void {
    try {
      item.resolve(this.db.transaction(item.work)());
    } catch (err) {
      item.reject(err);
    }
  }
}
