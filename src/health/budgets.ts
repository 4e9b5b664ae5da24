import type { RateLimits } from '../config/rate.js';
import type { RelayEvents } from '../events.js';
import type { SpoolDb } from '../spool/db.js';
import { SentWindows, type RateBudget } from '../spool/sentWindows.js';

export interface UpstreamBudgetsOptions {
  events: RelayEvents;
  db: SpoolDb;
  /** Each upstream's sending limits (config/rate.ts rateLimitsOf); upstreams without any are left out. */
  limits: ReadonlyMap<string, RateLimits>;
}

/**
 * What is left of each upstream's sending limits, for status: the delivery thread paces by its own
 * count (delivery/pacing.ts); this one is the main thread's, from the same log at start and the
 * same deliveries since, so the two agree.
 */
export class UpstreamBudgets {
  private readonly sent = new SentWindows();
  private readonly limits: Map<string, RateLimits>;

  constructor(options: UpstreamBudgetsOptions) {
    this.limits = new Map([...options.limits].filter(([, l]) => Object.values(l).some((n) => n > 0)));
    if (this.limits.size === 0) return;
    this.sent.seed(options.db);
    options.events.on('message', (e) => {
      if (e.event === 'delivered' && e.upstream && this.limits.has(e.upstream)) this.sent.add(e.upstream, e.recipients.length, e.at.getTime());
    });
  }

  /** Whether an upstream has limits at all. */
  has(upstream: string): boolean {
    return this.limits.has(upstream);
  }

  /** The upstream's windows with a limit: limit, used, remaining; undefined without limits. */
  budget(upstream: string, now = Date.now()): RateBudget | undefined {
    const limits = this.limits.get(upstream);
    return limits && this.sent.budget(upstream, limits, now);
  }
}
