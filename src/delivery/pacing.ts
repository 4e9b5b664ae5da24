import { PACED_REPLY_PREFIX, rateLimitsOf, type RateLimits } from '../config/rate.js';
import type { UpstreamConfig } from '../config/upstreams.js';
import type { SpoolDb } from '../spool/db.js';
import { SentWindows } from '../spool/sentWindows.js';

/** Let through: settle with the recipients the upstream took (0 when it took none). */
export interface PacedPass {
  go: true;
  settle: (accepted: number) => void;
}
/** Over budget: the upstream may take this message at `until`. */
export interface PacedWait {
  go: false;
  until: number;
}

export interface PacingOptions {
  upstreams: readonly Pick<UpstreamConfig, 'name' | 'type' | 'rate'>[];
  /** The spool, to count what was sent in the last 24 h before this start. */
  db?: SpoolDb;
  /** The clock; tests move it. */
  now?: () => number;
}

/**
 * Keeps each upstream under its provider's sending limits (`upstreams[].rate`, presets in
 * config/rate.ts): answers only "may this upstream take a message for N recipients now, else
 * when". A message let through counts at once, so that parallel deliveries cannot overrun a
 * window between them, and is settled with what the upstream took.
 */
export class Pacing {
  private readonly limits = new Map<string, RateLimits>();
  /**
   * Messages told to wait, per upstream, in line by the time they were given: each later one is
   * given a later time, so that a backlog comes back one by one as room frees, not all at once
   * to be turned away again (a log row and an event each time).
   */
  private readonly line = new Map<string, Map<number, { until: number; recipients: number }>>();
  private readonly sent = new SentWindows();
  private readonly now: () => number;

  constructor(options: PacingOptions) {
    this.now = options.now ?? Date.now;
    for (const u of options.upstreams) {
      const limits = rateLimitsOf(u as Parameters<typeof rateLimitsOf>[0]);
      if (Object.values(limits).some((n) => n > 0)) this.limits.set(u.name, limits);
    }
    if (options.db && this.limits.size > 0) this.sent.seed(options.db, this.now());
  }

  /** `message`: the spool id, for its place in the line when it has to wait. */
  take(upstream: string, recipients: number, message?: number): PacedPass | PacedWait {
    const limits = this.limits.get(upstream);
    if (!limits) return { go: true, settle: noop };
    const now = this.now();
    const line = this.lineOf(upstream, now);
    const mine = message === undefined ? undefined : line.get(message);
    const ahead = [...line].filter(([id, w]) => id !== message && (!mine || w.until < mine.until || (w.until === mine.until && id < message!))).map(([, w]) => w.recipients);
    const until = this.sent.freeAt(upstream, recipients, limits, now, ahead);
    if (until > now) {
      if (message !== undefined) line.set(message, { until, recipients });
      return { go: false, until };
    }
    if (message !== undefined) line.delete(message);
    const entry = this.sent.add(upstream, recipients, now);
    return { go: true, settle: (accepted) => this.sent.settle(upstream, entry, accepted) };
  }

  /** The message no longer waits for this upstream (another took it, or a person dropped it). */
  leaveLine(upstream: string, message: number): void {
    this.line.get(upstream)?.delete(message);
  }

  /** The line, without places kept for messages that did not come back (dropped, gone elsewhere). */
  private lineOf(upstream: string, now: number): Map<number, { until: number; recipients: number }> {
    let line = this.line.get(upstream);
    if (!line) this.line.set(upstream, (line = new Map()));
    for (const [id, w] of line) if (w.until < now - LINE_GRACE_MS) line.delete(id);
    return line;
  }
}

function noop(): void {}

/** A message due back at its time may be claimed a little later (a busy thread, a slow disk). */
const LINE_GRACE_MS = 60_000;

/**
 * `paced until 10:42` in the box's local time, as the console shows times; with the date when
 * not today. Rounded up to the minute: mail is never due before the time shown.
 */
export function pacedReason(until: number, now = Date.now()): string {
  const at = new Date(Math.ceil(until / 60_000) * 60_000);
  const pad = (n: number) => String(n).padStart(2, '0');
  const time = `${pad(at.getHours())}:${pad(at.getMinutes())}`;
  const today = new Date(now);
  const sameDay = at.getFullYear() === today.getFullYear() && at.getMonth() === today.getMonth() && at.getDate() === today.getDate();
  return `${PACED_REPLY_PREFIX}${sameDay ? time : `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${time}`}`;
}
