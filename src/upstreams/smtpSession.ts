import { connect as tcpConnect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { formatDuration } from '../config/duration.js';
import { UpstreamError, type BodyFactory, type SessionTimeouts } from './types.js';

export const DEFAULT_TIMEOUTS: SessionTimeouts = { connect: 10_000, greeting: 30_000 };

/**
 * The longest a session may take from the first byte to MAIL FROM: the connection, then the
 * greeting (or an implicit TLS handshake and the greeting: nodemailer times each with
 * `greetingTimeout`), then one more `greeting` for EHLO, STARTTLS and AUTH, which nodemailer
 * only bounds by its socket inactivity timeout (minutes, because it also covers DATA).
 */
export function setupBudget(timeouts: SessionTimeouts): number {
  return timeouts.connect + 2 * timeouts.greeting;
}

type GetSocket = (options: { host?: string | undefined; port?: number | string | undefined }, callback: (err: Error | null, socketOptions?: { connection: Socket }) => void) => void;

/**
 * nodemailer's `getSocket`: relaybox opens the TCP connection itself, bounded by `connect`,
 * and hands nodemailer the connected socket (nodemailer then does TLS and SMTP as usual). Its
 * own `connectionTimeout` is a deadline for the whole setup, so it cannot bound the connect alone.
 */
export function connectWithin(connectMs: number): GetSocket {
  return (options, callback) => {
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('error', finish);
      if (err) {
        socket.destroy();
        callback(setupFailure(err.message, 'connect', err));
      } else callback(null, { connection: socket });
    };
    const socket = tcpConnect({ host: options.host ?? 'localhost', port: Number(options.port ?? 25) }, () => finish(null));
    socket.on('error', finish);
    const timer = setTimeout(() => finish(new Error(`connection timed out after ${formatDuration(connectMs)} (delivery.timeouts.connect)`)), connectMs);
  };
}

/**
 * The UpstreamError nodemailer passes through untouched: toUpstreamError (smtp.ts) looks for it
 * under this symbol on the errors our callbacks hand to nodemailer.
 */
export const UPSTREAM_VERDICT = Symbol('relaybox.upstreamVerdict');

function setupFailure(reply: string, phase: 'connect' | 'ehlo', cause?: Error): Error {
  return Object.assign(cause ?? new Error(reply), { [UPSTREAM_VERDICT]: new UpstreamError(reply, null, phase) });
}

/**
 * One send on its way to MAIL FROM. nodemailer asks for the body right before it writes MAIL
 * FROM (after the greeting, TLS, EHLO and AUTH), so until then the send can be given up with not
 * a byte of the message sent: when setup takes longer than its budget, or when the caller's
 * signal says so (its upstream was found down meanwhile, see src/delivery/breaker.ts).
 */
export class SessionSetup {
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout;
  private started = false;
  /** Why the send was given up, if it was. */
  verdict: UpstreamError | null = null;

  constructor(options: { budgetMs: number; signal?: AbortSignal | undefined; onReady?: (() => void) | undefined }) {
    const { budgetMs, signal } = options;
    this.onReady = options.onReady;
    this.timer = setTimeout(
      () => this.giveUp(new UpstreamError(`no answer to EHLO, STARTTLS or AUTH: the session was not ready after ${formatDuration(budgetMs)} (delivery.timeouts)`, null, 'ehlo')),
      budgetMs,
    );
    this.onAbort = () => this.giveUp(new UpstreamError(abortReason(signal!), null, 'connect'));
    if (signal?.aborted) this.onAbort();
    else signal?.addEventListener('abort', this.onAbort, { once: true });
    this.signal = signal;
  }

  private readonly onAbort: () => void;
  private readonly onReady: (() => void) | undefined;
  private readonly signal: AbortSignal | undefined;

  /** For nodemailer's `mail.data.signal`: aborts the send while it is still setting up. */
  get abortSignal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once the session was ready and MAIL FROM went out. */
  get ready(): boolean {
    return this.started;
  }

  /** nodemailer asked for the body: MAIL FROM goes out now; from here the send runs to its end. */
  begin(): void {
    if (this.started) return;
    this.started = true;
    this.dispose();
    this.onReady?.();
  }

  /** The upstream cannot take this message (smtpExtensions.ts): nothing is sent, this is the answer. */
  refuse(verdict: UpstreamError): void {
    if (this.started || this.verdict) return;
    this.verdict = verdict;
    this.dispose();
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
  }

  private giveUp(verdict: UpstreamError): void {
    if (this.started || this.verdict) return;
    this.verdict = verdict;
    this.dispose();
    this.controller.abort(verdict);
  }
}

function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'given up before MAIL FROM';
}

/** The body streams one send opened (nodemailer asks for one once the session is up), closed at its end. */
export class OpenedBodies {
  private readonly opened: Readable[] = [];

  constructor(private readonly factory: BodyFactory) {}

  /** Called inside nodemailer's callbacks, where a throw would be nobody's: it fails the stream instead. */
  readonly open: BodyFactory = (form) => {
    let raw: Readable;
    try {
      raw = this.factory(form);
    } catch (err) {
      raw = new Readable({ read: () => raw.destroy(err as Error) });
    }
    this.opened.push(raw);
    return raw;
  };

  close(): void {
    for (const raw of this.opened) if (!raw.destroyed) raw.destroy();
  }
}
