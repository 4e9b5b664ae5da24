import { networkMatcher } from './net.js';
import { globToRegExp } from './glob.js';
import type { RouteRuleConfig } from './routes.js';

/** What the routes look at: the message as the device sent it (before any rewrite). */
export interface RoutedEnvelope {
  mailFrom: string;
  recipients: string[];
  authUser?: string | null | undefined;
  clientAddress?: string | null | undefined;
}

interface CompiledMatch {
  /** Whether the rule's `from`, `user` and `client` match the message (`to` is per recipient). */
  sender: (message: RoutedEnvelope) => boolean;
  to: RegExp | null;
}

/**
 * Which rule of `routes` each recipient takes: the first whose `from` matches the envelope sender
 * (as it arrived), whose `user` is the session's login, whose `client` holds the device's address
 * and whose `to` matches the recipient. One copy of this, for delivery (which upstreams) and for
 * ingress (which size limit the device hears).
 */
export class RouteMatcher {
  private readonly rules: CompiledMatch[];

  constructor(routes: readonly RouteRuleConfig[]) {
    this.rules = routes.map((r) => ({ sender: senderMatcher(r.match), to: r.match.to === undefined ? null : globToRegExp(r.match.to) }));
  }

  /** Per recipient, in order: the index of its rule, or null when none matches (every upstream, in order). */
  ruleIndexes(message: RoutedEnvelope): Array<number | null> {
    const senderRules = this.rules.map((r) => r.sender(message));
    return message.recipients.map((rcpt) => {
      const index = this.rules.findIndex((r, i) => senderRules[i] && (!r.to || r.to.test(rcpt)));
      return index === -1 ? null : index;
    });
  }
}

/** A rule with an empty `match` takes every message: after it, "no rule matched" never happens. */
export function hasCatchAll(routes: readonly RouteRuleConfig[]): boolean {
  return routes.some((r) => Object.values(r.match).every((value) => value === undefined));
}

function senderMatcher(match: RouteRuleConfig['match']): (message: RoutedEnvelope) => boolean {
  const from = match.from === undefined ? null : globToRegExp(match.from);
  const client = match.client === undefined ? null : networkMatcher([match.client]);
  // A session whose login was ignored (no smtp.auth.users) has no authUser: it never matches a `user`.
  return (message) =>
    (!from || from.test(message.mailFrom)) &&
    (match.user === undefined || message.authUser === match.user) &&
    (!client || (message.clientAddress != null && client(message.clientAddress)));
}
