import { RATE_WINDOW_MS, RATE_WINDOWS, type RateLimits, type RateWindow } from '../config/rate.js';
import type { SpoolDb } from './db.js';

/** One window's budget, for status: only windows with a limit are shown. */
export interface WindowBudget {
  limit: number;
  used: number;
  remaining: number;
}
export type RateBudget = Partial<Record<RateWindow, WindowBudget>>;

/** One message handed to an upstream: when, and to how many recipients. */
interface Sent {
  at: number;
  recipients: number;
}

const DAY_MS = 86_400_000;

/**
 * What each upstream took in the last 24 hours, counted in memory: seeded once from the delivery
 * log (every delivered attempt is a row with its time, upstream and recipients), then told of
 * each message as it goes. Nothing is written per message.
 */
export class SentWindows {
  private readonly sent = new Map<string, Sent[]>();

  /** Reads the log's delivered rows of the last 24 h, newest first, stopping at the first older one. */
  seed(db: SpoolDb, now = Date.now()): void {
    const since = now - DAY_MS;
    const rows = db.prepare(`SELECT at, upstream, recipients FROM log WHERE event = 'delivered' ORDER BY id DESC`).iterate() as IterableIterator<{ at: number; upstream: string | null; recipients: string | null }>;
    const found: Array<{ upstream: string; entry: Sent }> = [];
    for (const row of rows) {
      if (row.at < since) break; // the log is appended in time order
      if (!row.upstream) continue;
      found.push({ upstream: row.upstream, entry: { at: row.at, recipients: row.recipients ? row.recipients.split('\n').length : 0 } });
    }
    for (const { upstream, entry } of found.reverse()) this.list(upstream).push(entry);
  }

  /** An upstream took a message for `recipients` recipients at `at`; returns a handle to take it back. */
  add(upstream: string, recipients: number, at = Date.now()): Sent {
    const entry = { at, recipients };
    const list = this.list(upstream);
    // Kept in time order; an entry from the past (a reservation settled late) goes into place.
    let i = list.length;
    while (i > 0 && list[i - 1]!.at > at) i--;
    list.splice(i, 0, entry);
    return entry;
  }

  /** A reservation that came to less (recipients refused) or to nothing (the send failed). */
  settle(upstream: string, entry: Sent, recipients: number): void {
    const list = this.sent.get(upstream);
    if (!list) return;
    if (recipients > 0) entry.recipients = recipients;
    else if (list.includes(entry)) list.splice(list.indexOf(entry), 1);
  }

  /**
   * When the upstream may take a message for `recipients` recipients under `limits`: `now` when it
   * may, else the first moment every window has room. A message for more recipients than the
   * whole daily limit goes alone, once the window is empty: never stuck for good. `ahead`: the
   * recipients of messages already waiting in line for this upstream; this one comes after them.
   */
  freeAt(upstream: string, recipients: number, limits: RateLimits, now = Date.now(), ahead: readonly number[] = []): number {
    const list = this.prune(upstream, now);
    let at = now;
    for (const window of RATE_WINDOWS) {
      const limit = limits[window];
      if (limit <= 0) continue;
      const from = now - RATE_WINDOW_MS[window];
      const inWindow = list.filter((s) => s.at > from);
      const weigh = (s: Sent) => (window === 'recipients_per_day' ? s.recipients : 1);
      const perMessage = window === 'recipients_per_day';
      const inLine = perMessage ? ahead.reduce((sum, n) => sum + n, 0) : ahead.length;
      // A line longer than the limit fills whole windows first: this one waits that many more.
      const fullWindows = Math.floor(inLine / limit);
      const need = Math.min(inLine - fullWindows * limit + (perMessage ? recipients : 1), limit);
      let used = inWindow.reduce((sum, s) => sum + weigh(s), 0);
      let free = now;
      // The oldest entries leave the window first; wait until enough of them have.
      for (const s of inWindow) {
        if (used + need <= limit) break;
        used -= weigh(s);
        free = s.at + RATE_WINDOW_MS[window];
      }
      at = Math.max(at, free + fullWindows * RATE_WINDOW_MS[window]);
    }
    return at;
  }

  /** Each limited window's use, for status. */
  budget(upstream: string, limits: RateLimits, now = Date.now()): RateBudget {
    const list = this.prune(upstream, now);
    const budget: RateBudget = {};
    for (const window of RATE_WINDOWS) {
      const limit = limits[window];
      if (limit <= 0) continue;
      const from = now - RATE_WINDOW_MS[window];
      const used = list.reduce((sum, s) => sum + (s.at > from ? (window === 'recipients_per_day' ? s.recipients : 1) : 0), 0);
      budget[window] = { limit, used, remaining: Math.max(0, limit - used) };
    }
    return budget;
  }

  private list(upstream: string): Sent[] {
    let list = this.sent.get(upstream);
    if (!list) this.sent.set(upstream, (list = []));
    return list;
  }

  private prune(upstream: string, now: number): Sent[] {
    const list = this.list(upstream);
    let old = 0;
    while (old < list.length && list[old]!.at <= now - DAY_MS) old++;
    if (old > 0) list.splice(0, old);
    return list;
  }
}
