import { BREAKER_BACKOFF, CircuitBreakers, type Blocked, type OpenBreaker, type Pass } from './breaker.js';
import { UpstreamHolds } from './holds.js';

/**
 * Whether a delivery may go to an upstream now. Two things set one aside: a quota hold (its
 * reply said "come back later", holds.ts) and an open circuit breaker (it failed before MAIL
 * FROM, breaker.ts). Mail for a set-aside upstream goes to the next one, or waits until the
 * first of its upstreams may be tried again.
 */
export class UpstreamGate {
  readonly holds = new UpstreamHolds();
  readonly breakers: CircuitBreakers;

  constructor(options: { restored?: readonly OpenBreaker[]; backoff?: { firstMs: number; maxMs: number } | undefined } = {}) {
    this.breakers = new CircuitBreakers({ restored: options.restored ?? [], policy: options.backoff ?? BREAKER_BACKOFF });
  }

  /** Lets a delivery through (report it to `breakers`), or says why not and until when. */
  enter(upstream: string, now = Date.now()): Pass | Blocked {
    const held = this.holds.heldUntil(upstream, now);
    if (held) return { go: false, reason: `held until ${new Date(held.at).toISOString()}: ${held.reason}`, until: held.at, probing: null };
    const pass = this.breakers.admit(upstream, now);
    if (pass.go) return pass;
    const why = pass.probing ? 'down, being tried again' : `down until ${new Date(pass.until).toISOString()}`;
    return { ...pass, reason: `${why}: ${pass.reason}` };
  }

  /**
   * When the first of these upstreams may be tried again, if none of them may be now. A down
   * upstream counts as free again at `probesUntil` at the latest (a quota hold is known to last).
   */
  allBlockedUntil(upstreams: readonly string[], options: { probesUntil?: number } = {}, now = Date.now()): number | null {
    let earliest = Infinity;
    for (const upstream of upstreams) {
      const held = this.holds.heldUntil(upstream, now);
      const blocked = this.breakers.blockedNow(upstream, now);
      if (!held && !blocked) return null;
      earliest = Math.min(earliest, Math.max(held?.at ?? 0, Math.min(blocked?.until ?? 0, options.probesUntil ?? Infinity)));
    }
    return Number.isFinite(earliest) ? earliest : null;
  }
}
