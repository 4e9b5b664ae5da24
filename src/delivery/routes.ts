import type { Rewrite } from '../config/rewrite.js';
import { RouteMatcher } from '../config/routeMatch.js';
import type { RouteRuleConfig } from '../config/routes.js';
import type { ClaimedMessage } from '../spool/types.js';
import type { Upstream } from '../upstreams/types.js';

/** Recipients of one message that go through the same upstream list. */
export interface RouteGroup {
  /** Index of the rule in `routes`, or null: no rule matched, every upstream in order. */
  rule: number | null;
  upstreams: Upstream[];
  recipients: string[];
  /** The senders put on this group's copy: the rule's own rewrite over `smtp.rewrite`. */
  rewrite: Rewrite;
}

/** What the routes look at: the message as the device sent it (before any rewrite). */
export type RoutedMessage = Pick<ClaimedMessage, 'mailFrom' | 'recipients'> & Partial<Pick<ClaimedMessage, 'authUser' | 'clientAddress'>>;

export interface RouterOptions {
  routes: RouteRuleConfig[];
  /** Every upstream, in order: where a recipient no rule matches goes. */
  upstreams: Upstream[];
  /** `smtp.rewrite`. */
  rewrite: Rewrite;
}

interface CompiledRule {
  upstreams: Upstream[];
  rewrite: Rewrite;
}

/**
 * Picks upstreams per recipient (SPEC `routes`): the first rule whose `from` matches the device's
 * envelope sender (as it arrived, before any rewrite — that is what tells devices apart), whose
 * `user` is the login the device sent with, whose `client` holds the device's address, and whose
 * `to` matches the recipient wins; a recipient no rule matches goes through every upstream in
 * order. A message for `ops@` and `alerts@` can so take two paths; each group is its own SMTP
 * transaction, and fail-over happens within the group's list.
 */
export class Router {
  private readonly rules: CompiledRule[];
  private readonly matcher: RouteMatcher;
  private readonly all: Upstream[];
  private readonly rewrite: Rewrite;

  constructor(options: RouterOptions) {
    this.all = options.upstreams;
    this.rewrite = options.rewrite;
    const byName = new Map(options.upstreams.map((u) => [u.name, u]));
    this.matcher = new RouteMatcher(options.routes);
    this.rules = options.routes.map((r) => ({
      // Names are checked at config load; a missing one here would only mean fewer upstreams.
      upstreams: r.upstreams.flatMap((name) => byName.get(name) ?? []),
      rewrite: { ...options.rewrite, ...r.rewrite },
    }));
  }

  /** Groups in the order their first recipient appears; recipients keep their order within a group. */
  plan(message: RoutedMessage): RouteGroup[] {
    const indexes = this.matcher.ruleIndexes(message);
    const groups = new Map<number | null, RouteGroup>();
    message.recipients.forEach((rcpt, i) => {
      const index = indexes[i] ?? null;
      const rule = index === null ? null : this.rules[index]!;
      let group = groups.get(index);
      if (!group) {
        group = rule ? { rule: index, upstreams: rule.upstreams, recipients: [], rewrite: rule.rewrite } : { rule: null, upstreams: this.all, recipients: [], rewrite: this.rewrite };
        groups.set(group.rule, group);
      }
      group.recipients.push(rcpt);
    });
    return [...groups.values()];
  }
}
