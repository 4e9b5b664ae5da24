import { fits, largest, tooLargeText, type SizeLimit } from '../config/sizeLimits.js';
import type { AttemptRecord } from '../spool/store.js';
import type { Upstream } from '../upstreams/types.js';

/** The upstreams of a route group a message of `size` bytes can go through, or why none can. */
export type SizeFit = { upstreams: Upstream[]; failed?: never } | { upstreams?: never; failed: AttemptRecord };

/**
 * Upstreams too small for the message are left out before the round: not tried, so no failure is
 * counted and no upstream's health changes; a later, larger one carries it. When none of the
 * group's can (the config changed since the device heard 250), the recipients fail at once with
 * the words the device would have heard: no retry would make the message fit.
 */
export function fitBySize(upstreams: Upstream[], recipients: string[], size: number, limits: ReadonlyMap<string, SizeLimit> | undefined): SizeFit {
  if (!limits) return { upstreams };
  const fitting = upstreams.filter((u) => fitsUpstream(limits.get(u.name), size));
  if (fitting.length > 0 || upstreams.length === 0) return { upstreams: fitting };
  const named = upstreams.flatMap((u) => {
    const limit = limits.get(u.name);
    return limit ? [{ name: u.name, limit }] : [];
  });
  const best = largest(named.map((n) => n.limit))!;
  const upstream = named.find((n) => n.limit === best)!.name;
  return { failed: { event: 'failed', upstream, recipients, reply: `552 ${tooLargeText(best, size)}`, durationMs: 0 } };
}

function fitsUpstream(limit: SizeLimit | undefined, size: number): boolean {
  return !limit || fits(limit, size);
}
