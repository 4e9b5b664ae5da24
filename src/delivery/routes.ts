import type { RouteRuleConfig } from '../config/routes.js';
import type { Upstream } from '../upstreams/types.js';

/** Recipients of one message that go through the same upstream list. */
export interface RouteGroup {
  /** Index of the rule in `routes`, or null: no rule matched, every upstream in order. */
  rule: number | null;
  upstreams: Upstream[];
  recipients: string[];
}

interface CompiledRule {
  from: RegExp | null;
  to: RegExp | null;
  upstreams: Upstream[];
}

/** `*@sensors.example.com` → a case-insensitive whole-address RegExp; `*` any run, `?` one character. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'is');
}

/**
 * Picks upstreams per recipient (SPEC `routes`): the first rule whose `from` matches the device's
 * envelope sender (as it arrived, before any rewrite — that is what tells devices apart) and whose
 * `to` matches the recipient wins; a recipient no rule matches goes through every upstream in
 * order. A message for `ops@` and `alerts@` can so take two paths; each group is its own SMTP
 * transaction, and fail-over happens within the group's list.
 */
export class Router {
  private readonly rules: CompiledRule[];

  constructor(
    rules: RouteRuleConfig[],
    private readonly all: Upstream[],
  ) {
    const byName = new Map(all.map((u) => [u.name, u]));
    this.rules = rules.map((r) => ({
      from: r.match.from === undefined ? null : globToRegExp(r.match.from),
      to: r.match.to === undefined ? null : globToRegExp(r.match.to),
      // Names are checked at config load; a missing one here would only mean fewer upstreams.
      upstreams: r.upstreams.flatMap((name) => byName.get(name) ?? []),
    }));
  }

  /** Groups in the order their first recipient appears; recipients keep their order within a group. */
  plan(mailFrom: string, recipients: string[]): RouteGroup[] {
    const groups = new Map<number | null, RouteGroup>();
    for (const rcpt of recipients) {
      const index = this.rules.findIndex((r) => (!r.from || r.from.test(mailFrom)) && (!r.to || r.to.test(rcpt)));
      const rule = index === -1 ? null : index;
      let group = groups.get(rule);
      if (!group) groups.set(rule, (group = { rule, upstreams: rule === null ? this.all : this.rules[rule]!.upstreams, recipients: [] }));
      group.recipients.push(rcpt);
    }
    return [...groups.values()];
  }
}
