import type { UpstreamProblem } from '../events.js';
import type { SendPhase } from '../upstreams/types.js';
import { isQuotaReply } from './retry.js';

/**
 * Upstreams set aside until a time: Google's daily relay limits answer every message with the
 * same refusal until the window passes, so asking again per message only burns attempts (and can
 * look like abuse). Mail for a held upstream fails over to the next one, or waits.
 */
export class UpstreamHolds {
  private readonly until = new Map<string, { at: number; reason: string }>();

  hold(upstream: string, untilMs: number, reason: string): void {
    this.until.set(upstream, { at: untilMs, reason });
  }

  /** The hold on an upstream, while it lasts. */
  heldUntil(upstream: string, now = Date.now()): { at: number; reason: string } | null {
    const hold = this.until.get(upstream);
    if (!hold) return null;
    if (hold.at > now) return hold;
    this.until.delete(upstream);
    return null;
  }
}

/**
 * What a failure says about the upstream for the person watching status. A repeated `421` at
 * EHLO is Google's answer to a hostname it doesn't accept or an address not on its allowlist.
 */
export function problemOf(failure: { code: number | null; reply: string; phase: SendPhase; problem?: UpstreamProblem }): UpstreamProblem | undefined {
  if (failure.problem) return failure.problem;
  if (failure.code !== null && isQuotaReply(failure.reply)) return 'quota';
  if (failure.phase === 'auth' && failure.code !== null) return 'auth_failed';
  if (failure.code === 421 && (failure.phase === 'ehlo' || /\(EHLO\)/i.test(failure.reply))) return 'ehlo_rejected';
  return undefined;
}
