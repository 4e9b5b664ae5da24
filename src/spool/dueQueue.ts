import type { ClaimedMessage } from './types.js';

/** How often the spool is read for due messages that did not come through this process's accept. */
export const RESCAN_MS = 5_000;
/** While fresh messages keep delivery busy, older due ones (retries) are looked for this often. */
const BUSY_RESCAN_MS = 1_000;
/** Beyond this many waiting, fresh messages are left to the spool scan (memory on a Pi). */
const MAX_FRESH = 10_000;
/** Beyond this many body bytes waiting, fresh messages come without theirs (read from the spool). */
const MAX_FRESH_BODY_BYTES = 8 * 1024 * 1024;

/**
 * What delivery may take without asking SQLite: messages just committed by this process, in
 * order, and the time a scan of the spool is next worth doing (a deferral falls due, a person
 * retried, another process may have changed the spool). At a steady rate of new mail this turns
 * a query per delivery into a query per second.
 */
export class DueQueue {
  private readonly fresh = new Map<number, ClaimedMessage>();
  private bodyBytes = 0;
  /** When the spool must be read again; 0 = now (at start: whatever a crash or a restart left). */
  private scanAt = 0;

  /** A message committed as queued, due now. */
  offer(message: ClaimedMessage): void {
    if (this.fresh.size >= MAX_FRESH) {
      this.scanAt = 0;
      return;
    }
    if (message.body && this.bodyBytes + message.body.length > MAX_FRESH_BODY_BYTES) message = { ...message, body: undefined };
    this.bodyBytes += message.body?.length ?? 0;
    this.fresh.set(message.id, message);
  }

  /** Up to `limit` fresh messages, oldest first, that nobody holds yet. */
  take(limit: number, held: (id: number) => boolean): ClaimedMessage[] {
    const taken: ClaimedMessage[] = [];
    for (const [id, message] of this.fresh) {
      if (taken.length >= limit) break;
      this.remove(id);
      if (!held(id)) taken.push(message);
    }
    return taken;
  }

  /** Taken by a spool scan, or gone (dropped): not fresh any more. */
  remove(id: number): ClaimedMessage | undefined {
    const message = this.fresh.get(id);
    this.fresh.delete(id);
    this.bodyBytes -= message?.body?.length ?? 0;
    return message;
  }

  isFresh(id: number): boolean {
    return this.fresh.has(id);
  }

  scanDue(now: number): boolean {
    return now >= this.scanAt;
  }

  /**
   * After a scan: `exhausted` when it found every due message, `nextAt` the next one due later;
   * `onlyFresh` when everything it handed out was fresh (older due mail would have come first).
   */
  scanned(now: number, result: { exhausted: boolean; onlyFresh: boolean; nextAt: number | null }): void {
    if (result.exhausted) this.scanAt = Math.min(result.nextAt ?? Infinity, now + RESCAN_MS);
    else this.scanAt = result.onlyFresh ? now + BUSY_RESCAN_MS : now;
  }

  /** Something not fresh becomes due at `at` (a deferral's retry, a person's retry: now). */
  dueAt(at: number): void {
    this.scanAt = Math.min(this.scanAt, at);
  }

  /** When delivery should look next. */
  wakeAt(now: number): number {
    return this.fresh.size > 0 ? now : Math.max(now, this.scanAt);
  }
}
