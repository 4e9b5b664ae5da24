import { domainToASCII } from 'node:url';
import { z } from 'zod';
import { parseCidr } from './net.js';
import { routeRewrite } from './rewrite.js';

/**
 * An address pattern: `*` any run of characters, `?` exactly one, matched against the whole
 * address, case-insensitively (`*@sensors.example.com`). Angle brackets and spaces are refused
 * because an address in an envelope never has them, so such a pattern could never match.
 */
export const addressGlob = z
  .string()
  .regex(/^[^\s<>]+$/, 'expected an address pattern like *@sensors.example.com')
  // Envelopes carry IDN domains as ASCII (src/ingress/addresses.ts): a pattern's Unicode domain is compared in that form.
  .transform((glob) => glob.replace(/@([^@*?]*[^\x00-\x7f][^@*?]*)$/, (whole, domain: string) => `@${domainToASCII(domain) || domain}`));

/** The device's address: `192.168.1.20/32`, `fd00::/64`, or a bare address (one device). */
const clientCidr = z.string().refine((text) => parseCidr(text) !== undefined, {
  error: (issue) => `not a CIDR like 192.168.1.20/32 or fd00::/64, got "${String(issue.input)}"`,
});

export const routeRule = z.strictObject({
  /** Every key given must match. `{}` matches every message (a catch-all rule). */
  match: z.strictObject({
    from: addressGlob.optional(),
    to: addressGlob.optional(),
    /** The SMTP AUTH login of the session that sent it (one of smtp.auth.users). */
    user: z.string().min(1).optional(),
    client: clientCidr.optional(),
  }),
  upstreams: z.array(z.string().min(1)).min(1, 'name at least one upstream'),
  rewrite: routeRewrite.optional(),
});

export const routesSection = z.array(routeRule);

export type RouteRuleConfig = z.output<typeof routeRule>;

type RoutedConfig = { routes?: RouteRuleConfig[] | undefined; upstreams: { name: string }[]; smtp: { auth: { users: { username: string }[] } } };

/** The names a route uses must exist: else it would silently never deliver, or never match. */
export function checkRoutes(config: RoutedConfig, ctx: z.RefinementCtx): void {
  checkRouteUpstreams(config, ctx);
  checkRouteUsers(config, ctx);
}

/**
 * A route naming an upstream that does not exist would silently never deliver: refuse the config
 * instead, with the key path (`routes[0].upstreams[1]: no upstream named "foo"`).
 */
function checkRouteUpstreams(config: RoutedConfig, ctx: z.RefinementCtx): void {
  const known = new Set(config.upstreams.map((u) => u.name));
  config.routes?.forEach((rule, i) => {
    const seen = new Set<string>();
    rule.upstreams.forEach((name, j) => {
      const path = ['routes', i, 'upstreams', j];
      if (!known.has(name)) ctx.addIssue({ code: 'custom', path, message: `no upstream named "${name}" (have: ${[...known].join(', ')})` });
      else if (seen.has(name)) ctx.addIssue({ code: 'custom', path, message: `upstream "${name}" is listed twice` });
      seen.add(name);
    });
  });
}

/**
 * `match.user` is a login of smtp.auth.users: with none listed any AUTH is taken and ignored, so
 * no session is anyone's and the rule could never match.
 */
function checkRouteUsers(config: RoutedConfig, ctx: z.RefinementCtx): void {
  const users = config.smtp.auth.users.map((u) => u.username);
  config.routes?.forEach((rule, i) => {
    const user = rule.match.user;
    if (user === undefined || users.includes(user)) return;
    const have = users.length > 0 ? `(have: ${users.join(', ')})` : '(smtp.auth.users is empty: no session logs in as anyone)';
    ctx.addIssue({ code: 'custom', path: ['routes', i, 'match', 'user'], message: `no user named "${user}" in smtp.auth.users ${have}` });
  });
}
