import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { SMTPPoolOptions } from 'nodemailer';
import type { Logger } from 'pino';
import type { SmtpUpstreamConfig } from '../config/upstreams.js';
import { connectWithin, DEFAULT_TIMEOUTS, setupBudget } from './smtpSession.js';
import type { UpstreamContext } from './types.js';

// What an SMTP upstream's config becomes for nodemailer's pool; smtp.ts sends through it.

/** nodemailer's OAuth2 `provisionCallback`: hands over a token, or an error, for `user`. */
export type ProvisionToken = (user: string, renew: boolean, callback: (err: Error | null, accessToken?: string, expires?: number) => void) => void;

/** What the SMTP adapter needs; `smtp` configs are this as they are, presets (gmail-relay) build one. */
export type SmtpTarget = Omit<SmtpUpstreamConfig, 'type'> & {
  type: string;
  /** Log in with XOAUTH2 as `user`; nodemailer asks `provision` for a token (renew=true after a refusal). */
  xoauth2?: { user: string; provision: ProvisionToken };
};

const DEFAULT_PORTS = { tls: 465, starttls: 587, none: 25 } as const;

/** `smtp-relay.gmail.com:587 starttls, no auth, verify certificates` — never a secret. */
export function describeSmtp(target: SmtpTarget): string {
  const port = target.port ?? DEFAULT_PORTS[target.security];
  const auth = target.xoauth2 ? `XOAUTH2 as ${target.xoauth2.user}` : target.auth ? `auth as ${target.auth.user}` : 'no auth';
  let tls: string;
  if (target.security === 'none') tls = 'no TLS';
  else if (!target.tls.verify) tls = 'certificates NOT verified';
  else tls = target.tls.ca ? `verify certificates (ca ${target.tls.ca})` : 'verify certificates';
  const min = target.security !== 'none' && target.tls.min_version ? `, min ${target.tls.min_version}` : '';
  return `${target.host}:${port} ${target.security}, ${auth}, ${tls}${min}`;
}

/** nodemailer pool options for a target; throws when the configured CA file cannot be read. */
export function poolOptions(target: SmtpTarget, context: UpstreamContext): SMTPPoolOptions & { pool: true } {
  const timeouts = context.timeouts ?? DEFAULT_TIMEOUTS;
  const tls: ConnectionOptions = { rejectUnauthorized: target.tls.verify };
  if (target.tls.ca) {
    try {
      // Replaces the system store, like Postfix's CAfile: the operator trusts exactly this CA.
      tls.ca = readFileSync(target.tls.ca, 'utf8');
    } catch (err) {
      throw new Error(`upstream ${target.name}: cannot read tls.ca ${target.tls.ca}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  if (target.tls.min_version) tls.minVersion = target.tls.min_version;
  // SNI must not carry an IP literal (RFC 6066); nodemailer then checks the cert against the IP.
  if (!isIP(target.host)) tls.servername = target.host;

  return {
    pool: true,
    host: target.host,
    port: target.port ?? DEFAULT_PORTS[target.security],
    secure: target.security === 'tls',
    requireTLS: target.security === 'starttls',
    ignoreTLS: target.security === 'none',
    tls,
    // Google's relay answers `421 4.7.0` to a dotless EHLO; nodemailer would fall back to [127.0.0.1].
    name: context.hostname,
    ...authOptions(target),
    maxConnections: Math.max(1, context.concurrency),
    // One login per connection, not per message (`454 4.7.0 Too many login attempts`).
    maxMessages: Infinity,
    // nodemailer would re-read the body stream on a requeue; it is single-use, so we retry ourselves.
    maxRequeues: 0,
    // delivery.timeouts (smtpSession.ts): connect is ours; nodemailer's connectionTimeout is a
    // deadline for the whole setup, greetingTimeout bounds the greeting and each TLS handshake.
    getSocket: connectWithin(timeouts.connect),
    connectionTimeout: setupBudget(timeouts),
    greetingTimeout: timeouts.greeting,
    dnsTimeout: timeouts.connect,
    // Inactivity, not total time: a 30 MB upload keeps the socket busy; this covers the final reply.
    socketTimeout: 120_000,
    logger: nodemailerLogger(context.logger, target.name),
    debug: false,
    transactionLog: false,
  };
}

function authOptions(target: SmtpTarget): Pick<SMTPPoolOptions, 'auth'> {
  // One token provider for the whole pool: every new connection asks it, so a refreshed token is
  // shared instead of each connection refreshing on its own.
  if (target.xoauth2) return { auth: { type: 'OAuth2', user: target.xoauth2.user, provisionCallback: target.xoauth2.provision } };
  return target.auth ? { auth: { user: target.auth.user, pass: target.auth.pass } } : {};
}

/**
 * nodemailer logs every connection at info and every failed message twice at warn/error with a
 * stack; the delivery scheduler already reports outcomes, so its lines are kept for debug only.
 */
function nodemailerLogger(logger: Logger, upstream: string): Record<'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal', LogFn> {
  const child = logger.child({ upstream, lib: 'nodemailer' });
  const debug = child.debug.bind(child) as LogFn;
  return { trace: child.trace.bind(child) as LogFn, debug, info: debug, warn: debug, error: debug, fatal: debug };
}

type LogFn = (...args: unknown[]) => void;
