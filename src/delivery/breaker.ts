/**
 * A circuit breaker per upstream. An upstream that fails before MAIL FROM (it refuses or drops
 * connections, never greets, stalls in TLS or EHLO, refuses the login) is `down`: deliveries skip
 * it, straight to the next upstream, instead of each waiting out the same timeout. Once its backoff
 * has passed (30 s, doubling to 10 min), one real delivery is let through as a probe; when that
 * gets past MAIL FROM, the breaker closes and mail goes to the upstream again.
 */

import { setMaxListeners } from 'node:events';

export const BREAKER_BACKOFF = { firstMs: 30_000, maxMs: 600_000 };

/** An open breaker as the next delivery thread takes it over (plain data: it crosses threads). */
export interface OpenBreaker {
  upstream: string;
  /** The failure that opened it, or the last probe's. */
  reason: string;
  /** When one delivery may try the upstream again (ms). */
  nextProbeAt: number;
  /** The wait that led to nextProbeAt; the next failed probe doubles it. */
  backoffMs: number;
}

/** A delivery may go to the upstream; report how it went with `report`. */
export interface Pass {
  go: true;
  upstream: string;
  /** The one delivery let through to see whether an open breaker may close. */
  probe: boolean;
  /** Aborted when the upstream is found down while this delivery is still setting up its session. */
  signal: AbortSignal;
}

/** The upstream is skipped for now. */
export interface Blocked {
  go: false;
  reason: string;
  /** When a delivery may try it again; while a probe is under way, when it is expected to be decided. */
  until: number;
  /** Settles when the probe under way has its verdict; null when none is. */
  probing: Promise<void> | null;
}

/** What a delivery showed about its upstream: it works, it is down (and why), or nothing. */
export type Verdict = { up: true } | { up: false; reason: string } | null;

interface Open extends OpenBreaker {
  probe: { settled: Promise<void>; settle: () => void } | null;
}

export class CircuitBreakers {
  private readonly open = new Map<string, Open>();
  /** Per upstream, the signal of deliveries let through while its breaker was closed. */
  private readonly admitted = new Map<string, AbortController>();
  private readonly policy: { firstMs: number; maxMs: number };

  constructor(options: { policy?: { firstMs: number; maxMs: number }; restored?: readonly OpenBreaker[] } = {}) {
    this.policy = options.policy ?? BREAKER_BACKOFF;
    for (const b of options.restored ?? []) this.open.set(b.upstream, { ...b, probe: null });
  }

  /** Lets a delivery through, as the probe when the backoff has passed, or says why not. */
  admit(upstream: string, now = Date.now()): Pass | Blocked {
    const open = this.open.get(upstream);
    if (!open) return { go: true, upstream, probe: false, signal: this.controllerOf(upstream).signal };
    const blocked = this.blocked(open, now);
    if (blocked) return blocked;
    let settle = () => {};
    const settled = new Promise<void>((resolve) => (settle = resolve));
    open.probe = { settled, settle };
    // Nothing aborts a probe: the breaker is open already.
    return { go: true, upstream, probe: true, signal: new AbortController().signal };
  }

  /** Why a delivery could not try the upstream now, without taking the probe; null when it could. */
  blockedNow(upstream: string, now = Date.now()): Blocked | null {
    const open = this.open.get(upstream);
    return open ? this.blocked(open, now) : null;
  }

  /**
   * How a delivery let through went. A failure before MAIL FROM opens the breaker (and gives up
   * the deliveries still setting up a session with it: they would only wait out the same
   * timeout); a failed probe doubles the wait; anything that got past MAIL FROM closes it.
   * Returns whether the breaker changed.
   */
  report(pass: Pass, verdict: Verdict, now = Date.now()): boolean {
    const open = this.open.get(pass.upstream);
    if (pass.probe && open?.probe) {
      open.probe.settle();
      open.probe = null;
    }
    if (verdict === null) return false;
    if (verdict.up) return this.open.delete(pass.upstream);
    if (open) {
      open.reason = verdict.reason;
      if (!pass.probe) return false; // a delivery from before it opened: the backoff stands
      open.backoffMs = Math.min(this.policy.maxMs, open.backoffMs * 2);
      open.nextProbeAt = now + open.backoffMs;
      return true;
    }
    this.open.set(pass.upstream, { upstream: pass.upstream, reason: verdict.reason, backoffMs: this.policy.firstMs, nextProbeAt: now + this.policy.firstMs, probe: null });
    const admitted = this.admitted.get(pass.upstream);
    this.admitted.delete(pass.upstream);
    admitted?.abort(new Error(`${pass.upstream} is down: ${verdict.reason}`));
    return true;
  }

  /** Something a person did fixed the upstream (a new sign-in): mail may go to it at once. */
  close(upstream: string): void {
    this.open.get(upstream)?.probe?.settle();
    this.open.delete(upstream);
  }

  /** When the upstream's next probe is due, while its breaker is open. */
  nextProbeAt(upstream: string): number | null {
    return this.open.get(upstream)?.nextProbeAt ?? null;
  }

  /** The open breakers, for the next delivery thread. */
  snapshot(): OpenBreaker[] {
    return [...this.open.values()].map(({ upstream, reason, nextProbeAt, backoffMs }) => ({ upstream, reason, nextProbeAt, backoffMs }));
  }

  private blocked(open: Open, now: number): Blocked | null {
    if (open.probe) return { go: false, reason: open.reason, until: now + this.policy.firstMs, probing: open.probe.settled };
    if (now < open.nextProbeAt) return { go: false, reason: open.reason, until: open.nextProbeAt, probing: null };
    return null;
  }

  private controllerOf(upstream: string): AbortController {
    let controller = this.admitted.get(upstream);
    if (!controller) {
      controller = new AbortController();
      setMaxListeners(0, controller.signal); // one listener per delivery in flight
      this.admitted.set(upstream, controller);
    }
    return controller;
  }
}
