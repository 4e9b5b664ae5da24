import type { Config } from '../config/schema.js';
import { GOOGLE_ROWS } from './google.js';
import { MICROSOFT_ROWS } from './microsoft.js';
import { NETWORK_ROWS } from './network.js';
import type { HintRow } from './row.js';
import { SIZE_ROWS } from './size.js';
import { hintTarget, type HintTarget } from './target.js';

export type { HintTarget } from './target.js';

/** Every known reply, relaybox's own and then providers' first: the first matching row wins. */
export const HINT_TABLE: readonly HintRow[] = [...SIZE_ROWS, ...MICROSOFT_ROWS, ...GOOGLE_ROWS, ...NETWORK_ROWS];

/** The row for a reply from this upstream, with its hint written out; null when none fits. */
export function matchHint(reply: string, target: HintTarget): { id: string; hint: string } | null {
  for (const row of HINT_TABLE) {
    if (row.providers && !row.providers.includes(target.provider)) continue;
    if (row.login && row.login !== target.login) continue;
    if (row.reply.test(reply)) return { id: row.id, hint: row.hint(target) };
  }
  return null;
}

/**
 * Hints are worked out when read, from the stored reply and today's config: old rows get new
 * hints and nothing more is written per message. An upstream no longer configured gets none.
 */
export class ReplyHints {
  private readonly targets = new Map<string, HintTarget>();

  constructor(config: Pick<Config, 'upstreams' | 'hostname'>) {
    for (const u of config.upstreams) this.targets.set(u.name, hintTarget(u, config.hostname));
  }

  /** The hint for `reply` from upstream `upstream`, or null. */
  for(upstream: string | null | undefined, reply: string | null | undefined): string | null {
    const target = upstream ? this.targets.get(upstream) : undefined;
    if (!target || !reply) return null;
    return matchHint(reply, target)?.hint ?? null;
  }
}
