import { Readable } from 'node:stream';
import nodemailer from 'nodemailer';
import type { Mail, NodemailerError, SMTPPoolOptions, SMTPPoolSentMessageInfo } from 'nodemailer';
import type { Logger } from 'pino';
import type { UpstreamContext } from './types.js';
import { extensionsOf, planMailFrom } from './smtpExtensions.js';
import { describeSmtp, poolOptions, type SmtpTarget } from './smtpPool.js';
import { socketErrorWords } from './socketErrors.js';
import { DEFAULT_TIMEOUTS, OpenedBodies, SessionSetup, setupBudget, UPSTREAM_VERDICT } from './smtpSession.js';
import { UpstreamError, type BodyFactory, type Envelope, type RejectedRecipient, type SendOptions, type SendPhase, type SendResult, type Upstream } from './types.js';

export { UPSTREAM_VERDICT } from './smtpSession.js';
export { describeSmtp, type ProvisionToken, type SmtpTarget } from './smtpPool.js';

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
