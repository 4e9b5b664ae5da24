import { z } from 'zod';
import { canonicalDomain } from './domains.js';
import { duration } from './fields.js';

/**
 * `notify:` — notices by mail to the admin: a message that failed, an upstream that refuses its
 * login, is over quota or down, a full disk, mail stuck in the queue. Optional: without it
 * relaybox only shows these on the console, MQTT and metrics.
 */

export const NOTICE_EVENTS = ['failed', 'auth_failed', 'upstream_down', 'quota', 'disk', 'queue_stuck'] as const;
export type NoticeEvent = (typeof NOTICE_EVENTS)[number];

const address = z.string().regex(/^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/, 'expected a mail address like it@example.com');

export const notify = z.strictObject({
  to: z.array(address).min(1, 'at least one recipient is needed'),
  events: z.array(z.enum(NOTICE_EVENTS)).default([...NOTICE_EVENTS]),
  /** What happens within this window goes out as one mail (auth_failed and disk go at once). */
  digest: duration.refine((ms) => ms >= 1000, 'expected a duration of at least 1s, like 15m').default(15 * 60_000),
  /** queue_stuck: a message still undelivered this long after it was queued. */
  stuck_after: duration.refine((ms) => ms >= 1000, 'expected a duration of at least 1s, like 4h').default(4 * 3_600_000),
  /** Also a delivery status notification (RFC 3464) to the envelope sender of a failed message. */
  bounce_to_sender: z.boolean().default(false),
  language: z.enum(['en', 'ja']).default('en'),
});

export type NotifyConfig = z.output<typeof notify>;

/** Allowed when the list (canonical domains, as the schema keeps them) is empty or names the address's domain. */
export function domainAllowed(address: string, allowedDomains: readonly string[]): boolean {
  if (allowedDomains.length === 0) return true;
  const domain = canonicalDomain(address.slice(address.lastIndexOf('@') + 1));
  return domain !== undefined && allowedDomains.includes(domain);
}

/** Notices must not open a relay: each recipient is held to `smtp.allow_recipient_domains`. */
export function checkNotifyRecipients(
  config: { notify?: NotifyConfig; smtp: { allow_recipient_domains: string[] } },
  ctx: z.RefinementCtx,
): void {
  const allowed = config.smtp.allow_recipient_domains;
  config.notify?.to.forEach((to, i) => {
    if (domainAllowed(to, allowed)) return;
    ctx.addIssue({ code: 'custom', path: ['notify', 'to', i], message: `"${to}" is outside smtp.allow_recipient_domains (${allowed.join(', ')})` });
  });
}
