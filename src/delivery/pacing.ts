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

  take(upstream: string, recipients: number): PacedPass | PacedWait {
    const limits = this.limits.get(upstream);
    if (!limits) return { go: true, settle: noop };
    const now = this.now();
    const until = this.sent.freeAt(upstream, recipients, limits, now);
    if (until > now) return { go: false, until };
    const entry = this.sent.add(upstream, recipients, now);
    return { go: true, settle: (accepted) => this.sent.settle(upstream, entry, accepted) };
  }
}

function noop(): void {}

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
