import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { UpstreamProblem } from '../events.js';

export interface Envelope {
  from: string;
  to: string[];
  /** The spool row this message comes from; adapters use it only to name files and log. */
  spoolId?: number;
  /** Bytes over 127 in the message: declare BODY=8BITMIME, or ask for the 7-bit form where the upstream lacks it. */
  eightBit?: boolean;
  /** The device declared BODY=8BITMIME: declared upstream as well, where the upstream offers it. */
  declared8BitMime?: boolean;
}

/** How the upstream wants the message. */
export interface BodyForm {
  /** 8-bit parts in quoted-printable or base64 (an upstream without 8BITMIME). */
  sevenBit?: boolean;
  /** false: unsigned — a provider that re-signs everything it sends (Microsoft Graph) gains nothing from our DKIM signature. */
  dkim?: boolean;
}

/** Makes a fresh stream of the raw message each time it is called. */
export type BodyFactory = (form?: BodyForm) => Readable;

/** A recipient the upstream refused at RCPT TO, with its words. */
export interface RejectedRecipient {
  rcpt: string;
  reply: string;
  code: number | null;
}

/** What the upstream said to one transaction that reached DATA. */
export interface SendResult {
  /** Recipients the upstream took responsibility for. */
  accepted: string[];
  rejected: RejectedRecipient[];
  /** The reply to the end of DATA, e.g. `250 2.0.0 OK 1700000000 x1-20020a05`. */
  reply: string;
}

/** Where a transaction stopped: before MAIL FROM it is the upstream's problem, after it the message's. */
export type SendPhase = 'connect' | 'tls' | 'greeting' | 'ehlo' | 'auth' | 'mail' | 'rcpt' | 'data' | 'io';

/** A transaction that failed as a whole; `reply` keeps the upstream's words (or the socket error). */
export class UpstreamError extends Error {
  constructor(
    readonly reply: string,
    readonly code: number | null,
    readonly phase: SendPhase,
    /** Set by an adapter that knows better than the reply code (a bad clock, a dead token). */
    readonly problem?: UpstreamProblem,
    options: { retryAfterMs?: number | undefined } = {},
  ) {
    super(reply);
    this.name = 'UpstreamError';
    this.retryAfterMs = options.retryAfterMs;
  }

  /** An HTTPS API's `Retry-After` with a throttling answer: hold the upstream this long, not `quota_hold`. */
  readonly retryAfterMs: number | undefined;
}

/**
 * The upstream cannot take this message at all (an address that needs SMTPUTF8, which it does not
 * offer); said before MAIL FROM, so nothing was sent. Another upstream may take it.
 */
export class UnsupportedMessage extends UpstreamError {
  constructor(reply: string) {
    super(reply, null, 'mail');
    this.name = 'UnsupportedMessage';
  }
}

export interface SendOptions {
  /**
   * Gives the send up while it has not reached MAIL FROM (nothing of the message sent): its
   * upstream was found down meanwhile. Once MAIL FROM is out, the send runs to its end.
   */
  signal?: AbortSignal | undefined;
  /** Called when the session is set up and MAIL FROM goes out: the upstream is reachable. */
  onSessionReady?: (() => void) | undefined;
}

/** One adapter per upstream type. It sends bytes; it never touches the spool or decides retries. */
export interface Upstream {
  readonly name: string;
  readonly type: string;
  /** A short human description for check-config, e.g. `smtp-relay.gmail.com:587 starttls`. */
  describe(): string;
  /** `body` makes a fresh stream of the raw message each time it is called. */
  send(envelope: Envelope, body: BodyFactory, options?: SendOptions): Promise<SendResult>;
  close(): Promise<void>;
  /** OAuth upstreams: a person signed in again (the console's Reconnect); an access token in memory is from before. */
  signedInAgain?(): void;
}

/** `delivery.timeouts`: how long setting up an upstream session may take, step by step (ms). */
export interface SessionTimeouts {
  /** DNS and the TCP connection. */
  connect: number;
  /** The greeting, and each later step before MAIL FROM (TLS handshake, EHLO, AUTH). */
  greeting: number;
}

/** What every adapter is made with (registry.ts builds them). */
export interface UpstreamContext {
  /** Our EHLO name; must be an FQDN for Google's relay. */
  hostname: string;
  /** Delivery concurrency: the most connections one upstream may hold open. */
  concurrency: number;
  logger: Logger;
  /** `delivery.timeouts` for SMTP sessions (and HTTPS APIs: connect, then an answer); default 10 s connect, 30 s greeting. */
  timeouts?: SessionTimeouts;
  /** data_dir: OAuth upstreams keep their refresh and access tokens in `<data_dir>/oauth`. */
  dataDir?: string;
}
