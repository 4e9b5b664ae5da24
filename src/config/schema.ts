import { hostname as osHostname } from 'node:os';
import { z } from 'zod';
import { byteSize } from './bytes.js';
import { formatDuration } from './duration.js';
import { duration, hostPort } from './fields.js';
import { http } from './http.js';
import { mqtt } from './mqtt.js';
import { checkNotifyRecipients, notify } from './notify.js';
import { parseCidr } from './net.js';
import { upstream } from './upstreams.js';
import { addressGlob, checkRoutes, routesSection } from './routes.js';
import { smtpRewrite } from './rewrite.js';
import { dkimSection } from './dkim.js';
import { canonicalDomain } from './domains.js';

const cidr = z.string().refine((text) => parseCidr(text) !== undefined, {
  error: (issue) => `expected an address or network like 192.168.0.0/16, got "${String(issue.input)}"`,
});

// Either IDN form (bücher.example, xn--bcher-kva.example), a trailing dot or none: kept as ASCII.
const domain = z.string().transform((text, ctx) => {
  const ascii = canonicalDomain(text);
  if (ascii === undefined) ctx.addIssue({ code: 'custom', message: `expected a domain name like example.com or bücher.example, got "${text}"` });
  return ascii ?? text;
});

/** `smtp.default_domain`: empty means the hostname. */
const defaultDomain = z.string().transform((text, ctx) => {
  if (text === '') return text;
  const ascii = canonicalDomain(text);
  if (ascii === undefined) ctx.addIssue({ code: 'custom', message: `expected a domain name like example.com (or "" for the hostname), got "${text}"` });
  return ascii ?? text;
});

/** 0 would mean "never" to a socket: a deadline must be one. */
const smtpTimeout = duration.refine((ms) => ms > 0, 'expected a duration longer than 0, like 5m');

const PRIVATE_NETWORKS = ['127.0.0.0/8', '::1/128', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'];

const smtp = z.strictObject({
  listen: z.array(hostPort).min(1).prefault(['127.0.0.1:2525']),
  max_message_bytes: z.number().int().min(1024).default(36_700_160),
  /** Below this much free space in data_dir new mail hears 452 4.3.1; unset: see spool/diskSpace.ts. */
  min_free_bytes: byteSize.optional(),
  allow_networks: z.array(cidr).default(PRIVATE_NETWORKS),
  /** Qualifies a bare MAIL FROM/RCPT TO name (`<root>` → root@default_domain), like Postfix's myorigin. */
  default_domain: defaultDomain.default(''),
  auth: z
    .strictObject({
      required: z.boolean().default(false),
      /**
       * Offer AUTH before STARTTLS. Unset: no (yes with tls.mode none, where TLS never comes and
       * configs from before this key kept working); see ingress/authOffer.ts.
       */
      allow_cleartext: z.boolean().optional(),
      users: z
        .array(
          z.strictObject({
            username: z.string().min(1),
            password_hash: z.string().regex(/^\$scrypt\$/, 'expected a hash made by `relaybox hash-password`'),
            /** Envelope and header From this login may use (address patterns); unset: any. */
            allowed_from: z.array(addressGlob).min(1, 'name at least one address pattern, or leave allowed_from out').optional(),
          }),
        )
        .default([]),
    })
    .prefault({}),
  tls: z
    .strictObject({
      mode: z.enum(['none', 'starttls', 'implicit']).default('starttls'),
      cert: z.string().min(1).default('auto'),
      key: z.string().optional(),
      min_version: z.enum(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    })
    .prefault({}),
  allow_recipient_domains: z.array(domain).default([]),
  // Floods and stalled uploads: sessions at once (all listen addresses), and from one address.
  max_connections: z.number().int().min(1).default(100),
  max_connections_per_ip: z.number().int().min(1).default(20),
  // Message bodies held in memory over all sessions; past it, bodies go to the spool as they arrive.
  max_buffered_bytes: z.number().int().min(0).default(33_554_432),
  // How long a session may sit idle between commands, and how long DATA may go without a byte.
  timeouts: z.strictObject({ command: smtpTimeout.default(300_000), data: smtpTimeout.default(300_000) }).prefault({}),
  // The senders relaybox puts on outgoing mail instead of the device's; a route may have its own.
  rewrite: smtpRewrite,
});

/** How long one step of setting up an upstream session may take (0 would mean nodemailer's own defaults). */
const sessionTimeout = (fallback: number) =>
  duration
    .refine((ms) => ms >= 100 && ms <= 600_000, { error: (issue) => `expected a duration from 100ms to 10m, got ${formatDuration(Number(issue.input))}` })
    .default(fallback);

const delivery = z.strictObject({
  retry: z
    .strictObject({
      first: duration.default(60_000),
      max: duration.default(3_600_000),
      give_up_after: duration.default(172_800_000),
    })
    .prefault({}),
  /** Messages in flight at once; connections to an upstream are pooled up to this number. */
  concurrency: z.number().int().min(1).max(64).default(4),
  /** How long a SIGTERM waits for deliveries in flight before closing anyway. */
  shutdown_grace: duration.default(10_000),
  /** An upstream that answers with a quota refusal (Google's daily relay limits) is left alone this long. */
  quota_hold: duration.default(3_600_000),
  /** Delivered and failed messages (and their log rows) are pruned after this long. */
  keep_log: duration.default(90 * 86_400_000),
  /**
   * Setting up an upstream session: `connect` for DNS and TCP, `greeting` for the server's
   * greeting and each later setup step (TLS handshake, EHLO, AUTH). An upstream that fails here
   * is set aside (src/delivery/breaker.ts), so a silent one costs one wait, not one per message.
   */
  timeouts: z.strictObject({ connect: sessionTimeout(10_000), greeting: sessionTimeout(30_000) }).prefault({}),
});

export const configSchema = z
  .strictObject({
    hostname: z.string().min(1).default(osHostname()),
    data_dir: z.string().min(1).default('/var/lib/relaybox'),
    smtp: smtp.prefault({}),
    upstreams: z.array(upstream).min(1, 'at least one upstream is needed'),
    routes: routesSection.optional(),
    delivery: delivery.prefault({}),
    dkim: dkimSection.optional(),
    mqtt: mqtt.optional(),
    notify: notify.optional(),
    http: http.prefault({}),
    log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') }).prefault({}),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.upstreams.forEach((u, i) => {
      if (seen.has(u.name)) ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'name'], message: `duplicate upstream name "${u.name}"` });
      seen.add(u.name);
    });
    checkRoutes(config, ctx);
    checkNotifyRecipients(config, ctx);
    if (config.smtp.auth.required && config.smtp.auth.users.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['smtp', 'auth', 'users'], message: 'auth is required but no users are listed' });
    }
    if (config.smtp.auth.allow_cleartext === false && config.smtp.tls.mode === 'none' && config.smtp.auth.users.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['smtp', 'auth', 'allow_cleartext'],
        message: 'false needs TLS, but smtp.tls.mode is none: set tls.mode to starttls or implicit, or remove allow_cleartext',
      });
    }
    if (config.smtp.tls.cert !== 'auto' && !config.smtp.tls.key) {
      ctx.addIssue({ code: 'custom', path: ['smtp', 'tls', 'key'], message: 'a key file is needed with a cert file' });
    }
  });

export type Config = z.output<typeof configSchema>;
