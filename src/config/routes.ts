import { domainToASCII } from 'node:url';
import { z } from 'zod';

/**
 * An address pattern: `*` any run of characters, `?` exactly one, matched against the whole
 * address, case-insensitively (`*@sensors.example.com`). Angle brackets and spaces are refused
 * because an address in an envelope never has them, so such a pattern could never match.
 */
const addressGlob = z
  .string()
  .regex(/^[^\s<>]+$/, 'expected an address pattern like *@sensors.example.com')
  // Envelopes carry IDN domains as ASCII (src/ingress/addresses.ts): a pattern's Unicode domain is compared in that form.
  .transform((glob) => glob.replace(/@([^@*?]*[^\x00-\x7f][^@*?]*)$/, (whole, domain: string) => `@${domainToASCII(domain) || domain}`));

export const routeRule = z.strictObject({
  /** Both given: both must match. `{}` matches every message (a catch-all rule). */
  match: z.strictObject({ from: addressGlob.optional(), to: addressGlob.optional() }),
  upstreams: z.array(z.string().min(1)).min(1, 'name at least one upstream'),
});

export const routesSection = z.array(routeRule);

export type RouteRuleConfig = z.output<typeof routeRule>;

/**
 * A route naming an upstream that does not exist would silently never deliver: refuse the config
 * instead, with the key path (`routes[0].upstreams[1]: no upstream named "foo"`).
 */
export function checkRouteUpstreams(
  config: { routes?: RouteRuleConfig[] | undefined; upstreams: { name: string }[] },
  ctx: z.RefinementCtx,
): void {
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
