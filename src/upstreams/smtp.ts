import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import type { Mail, NodemailerError, SMTPPoolOptions, SMTPPoolSentMessageInfo } from 'nodemailer';
import type { Logger } from 'pino';
import type { SmtpUpstreamConfig } from '../config/upstreams.js';
import type { UpstreamContext } from './types.js';
import { extensionsOf, planMailFrom } from './smtpExtensions.js';
import { socketErrorWords } from './socketErrors.js';
import { connectWithin, DEFAULT_TIMEOUTS, OpenedBodies, SessionSetup, setupBudget, UPSTREAM_VERDICT } from './smtpSession.js';
import { UpstreamError, type BodyFactory, type Envelope, type RejectedRecipient, type SendOptions, type SendPhase, type SendResult, type Upstream } from './types.js';

export { UPSTREAM_VERDICT } from './smtpSession.js';

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

export class SmtpUpstream implements Upstream {
  readonly name: string;
  readonly type: string;
  private readonly transport: Mail<SMTPPoolSentMessageInfo, SMTPPoolOptions>;
  private readonly logger: Logger;
  /** From the first byte to MAIL FROM, at most this long (smtpSession.ts). */
  private readonly setupMs: number;
  private closed = false;

  constructor(
    private readonly target: SmtpTarget,
    context: UpstreamContext,
  ) {
    this.name = target.name;
    this.type = target.type;
    this.logger = context.logger.child({ upstream: target.name });
    this.setupMs = setupBudget(context.timeouts ?? DEFAULT_TIMEOUTS);
    this.transport = nodemailer.createTransport(poolOptions(target, context));
    // An 'error' event without a listener would crash the service; failures reach send() anyway.
    this.transport.on('error', (err: Error) => this.logger.debug({ err: err.message }, 'nodemailer transport error'));
  }

  describe(): string {
    return describeSmtp(this.target);
  }

  async send(envelope: Envelope, body: BodyFactory, options: SendOptions = {}): Promise<SendResult> {
    if (this.closed) throw new UpstreamError(`upstream ${this.name} is closed`, null, 'connect');
    try {
      return await this.attempt(envelope, body, options);
    } catch (err) {
      if (!closedBeforeSending(err) || this.closed || options.signal?.aborted) throw toUpstreamError(err);
      // A pooled connection died (idle drop, server restart) before a byte of this message went
      // out; one more try on a fresh connection is safe and spares the message a deferral.
      this.logger.debug({ spoolId: envelope.spoolId }, 'connection closed before sending; retrying once on a new one');
    }
    try {
      return await this.attempt(envelope, body, options);
    } catch (err) {
      throw toUpstreamError(err);
    }
  }

  private async attempt(envelope: Envelope, body: BodyFactory, options: SendOptions): Promise<SendResult> {
    const bodies = new OpenedBodies(body);
    const setup = new SessionSetup({ budgetMs: this.setupMs, signal: options.signal, onReady: options.onSessionReady });
    try {
      return toSendResult(await this.sendRaw(envelope, bodies.open, setup));
    } catch (err) {
      if (setup.verdict) throw setup.verdict;
      const all = allRejected(err);
      if (all) return all;
      throw setup.ready ? err : beforeMailFrom(err);
    } finally {
      setup.dispose();
      // Releases the spool reader when nodemailer gave up before reading it to the end.
      bodies.close();
    }
  }

  /**
   * Hands the spooled bytes straight to the pool, through nodemailer's transport interface
   * (`send(mail, callback)` with `mail.data` and `mail.message`): `sendMail` would build a MIME
   * tree and random boundaries for every message only to stream the raw bytes anyway.
   */
  private sendRaw(envelope: Envelope, body: BodyFactory, setup: SessionSetup): Promise<SMTPPoolSentMessageInfo> {
    const messageId = `relaybox-${envelope.spoolId ?? 'message'}`;
    const pool = this.transport.transporter as unknown as { send(mail: unknown, done: (err: Error | null, info: SMTPPoolSentMessageInfo) => void): void };
    let sevenBit = false;
    const mail = {
      data: { signal: setup.abortSignal },
      message: {
        // Asked for once the session is set up: MAIL FROM's parameters and the body's form follow
        // what this upstream's EHLO offered (smtpExtensions.ts).
        getEnvelope: () => {
          const plan = planMailFrom(envelope, extensionsOf(pool, mail) ?? new Set(), this.name);
          sevenBit = plan.sevenBit;
          if (!plan.refusal) return plan.envelope;
          setup.refuse(plan.refusal);
          // No recipients: nodemailer stops before MAIL FROM and keeps the connection for the next message.
          return { from: envelope.from, to: [] };
        },
        messageId: () => messageId,
        getHeader: () => messageId,
        // Asked for right before MAIL FROM.
        createReadStream: () => {
          if (setup.verdict) return Readable.from([]);
          setup.begin();
          return body(sevenBit ? { sevenBit } : undefined);
        },
      },
    };
    return new Promise((resolve, reject) => pool.send(mail, (err, info) => (err ? reject(err) : resolve(info))));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.transport.close();
  }
}

export function createSmtpUpstream(target: SmtpTarget, context: UpstreamContext): SmtpUpstream {
  return new SmtpUpstream(target, context);
}

function rejectedFrom(rcpts: readonly string[], errors: readonly NodemailerError[] | undefined): RejectedRecipient[] {
  return rcpts.map((rcpt) => {
    const err = errors?.find((e) => e.recipient === rcpt);
    return { rcpt, reply: err?.response ?? err?.message ?? '', code: err?.responseCode ?? null };
  });
}

function toSendResult(info: SMTPPoolSentMessageInfo): SendResult {
  const rejectedErrors = (info as { rejectedErrors?: NodemailerError[] }).rejectedErrors;
  return {
    accepted: [...info.accepted],
    rejected: rejectedFrom(info.rejected, rejectedErrors),
    reply: info.response,
  };
}

/**
 * A failure before MAIL FROM is the upstream's, whatever the error looks like: a socket error
 * nodemailer cannot place (a reset while waiting for the greeting) becomes phase `connect`.
 */
function beforeMailFrom(err: unknown): unknown {
  const failure = toUpstreamError(err);
  if (failure.phase !== 'io') return failure;
  return new UpstreamError(failure.reply, failure.code, 'connect', failure.problem);
}

/** Every recipient refused at RCPT: nodemailer throws, but it is a per-recipient answer. */
function allRejected(err: unknown): SendResult | null {
  const e = err as NodemailerError;
  if (e?.code !== 'EENVELOPE' || e.command !== 'RCPT TO' || !e.rejected?.length || !e.rejectedErrors?.length) return null;
  return { accepted: [], rejected: rejectedFrom(e.rejected, e.rejectedErrors), reply: e.response ?? e.message };
}

/**
 * The pool closed the connection without reporting a send result: nodemailer does this only when
 * not a byte of the message was written (a reused connection found dead, or a close before the
 * greeting). Every error from an actual SMTP step carries `command`.
 */
function closedBeforeSending(err: unknown): boolean {
  const e = err as NodemailerError;
  return e?.code === 'ECONNECTION' && e.command === undefined && e.response === undefined;
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL']);

/** Where a nodemailer error happened; see `command`/`code` in nodemailer's smtp-connection. */
export function phaseOf(e: NodemailerError): SendPhase {
  const command = e.command ?? '';
  if (command.startsWith('AUTH') || e.code === 'EAUTH' || e.code === 'ENOAUTH' || e.code === 'EOAUTH2') return 'auth';
  if (command === 'STARTTLS' || e.code === 'ETLS') return 'tls';
  if (command === 'EHLO' || command === 'HELO' || command === 'LHLO') return 'ehlo';
  if (command === 'MAIL FROM') return 'mail';
  if (command === 'RCPT TO') return 'rcpt';
  if (command === 'DATA') return 'data';
  if (e.code === 'EENVELOPE') return /sender/i.test(e.message) ? 'mail' : 'rcpt'; // refused before sending it
  if (e.code === 'ETIMEDOUT') {
    if (e.timeoutType === 'CONNECT_TIMEOUT') return 'connect';
    if (e.timeoutType === 'GREETING_TIMEOUT') return 'greeting';
    if (e.timeoutType === 'UPGRADE_TIMEOUT') return 'tls';
    return 'io';
  }
  if (e.code === 'EDNS') return 'connect';
  if (e.code === 'EPROTOCOL' && /greeting/i.test(e.message)) return 'greeting';
  if (e.code === 'ESOCKET') {
    const original = e.originalCode ?? '';
    if (CONNECT_CODES.has(original)) return 'connect';
    if (/CERT|SSL|TLS|SELF_SIGNED|VERIFY|ALTNAME/i.test(original)) return 'tls';
    return 'io';
  }
  // Closed before the message went out and the retry failed too: the upstream is not taking connections.
  if (closedBeforeSending(e)) return 'connect';
  return 'io';
}

/** Keeps the upstream's words (`421 4.7.0 Try again later`) or, without a reply, the socket error. */
export function toUpstreamError(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const failure = upstreamErrorOf(err);
  // No server reply: Node's socket or TLS error, said in words (socketErrors.ts).
  const words = failure.code === null ? socketErrorWords(err) : null;
  return words ? new UpstreamError(words, null, failure.phase, failure.problem) : failure;
}

function upstreamErrorOf(err: unknown): UpstreamError {
  const verdict = (err as { [UPSTREAM_VERDICT]?: unknown } | null)?.[UPSTREAM_VERDICT];
  if (verdict instanceof UpstreamError) return verdict;
  if (!(err instanceof Error)) return new UpstreamError(String(err), null, 'io');
  const e = err as NodemailerError;
  const reply = e.response?.trim() || e.message;
  return new UpstreamError(reply, e.responseCode ?? null, phaseOf(e));
}
