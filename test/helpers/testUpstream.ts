import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import selfsigned from 'selfsigned';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';

/** One message the test upstream accepted. */
export interface Received {
  from: string;
  to: string[];
  /** The DATA bytes (dot-unstuffed); null when started with `keepRaw: false`. */
  raw: Buffer | null;
  sha256: string;
  size: number;
  /** performance.now() when the final reply was sent. */
  receivedAt: number;
  /** The EHLO name the client gave. */
  ehlo: string;
  secure: boolean;
  authUser?: string;
  /** The MAIL FROM parameters, e.g. `{ BODY: '8BITMIME', SMTPUTF8: true }`. */
  mailParams: Record<string, string | boolean>;
}

export interface TestUpstreamOptions {
  /** Offer STARTTLS with a self-signed certificate for localhost / 127.0.0.1 (see `.cert`). */
  tls?: boolean;
  /** Refuse MAIL FROM and AUTH on a plaintext session: `530 5.7.0 Must issue a STARTTLS command first`. */
  requireTls?: boolean;
  /** Require AUTH PLAIN/LOGIN with these credentials. */
  auth?: { user: string; pass: string };
  /** Offer AUTH XOAUTH2 and accept a login when this says the bearer token is good for the user. */
  xoauth2?: (user: string, token: string) => boolean;
  /** A bad token: `google` answers `334 <base64 JSON>`, then 535; `microsoft` answers `535 5.7.3` at once. */
  xoauth2Style?: 'google' | 'microsoft';
  /** Refuse every login (password or XOAUTH2) with this reply, as a provider does: `{ code: 535, text: '5.7.139 Authentication unsuccessful, …' }`. */
  refuseLogins?: { code: number; text: string };
  /** SIZE limit; bigger messages get `552 5.3.4`. */
  size?: number;
  /** Default true. False keeps only sha256 and size (for very large or many messages). */
  keepRaw?: boolean;
  /** Leave 8BITMIME / SMTPUTF8 out of the EHLO answer, like an old 7-bit server. */
  hide8BitMime?: boolean;
  hideSmtpUtf8?: boolean;
}

interface Failure {
  code: number;
  text: string;
  remaining: number;
}

function smtpError(code: number, text: string): Error {
  return Object.assign(new Error(text), { responseCode: code });
}

/** Taken once per failure; `remaining` counts down, Infinity never does. */
function take(failure: Failure | null): Failure | null {
  if (!failure || failure.remaining <= 0) return null;
  failure.remaining -= 1;
  return failure;
}

let certPromise: Promise<{ cert: string; key: string }> | undefined;

/** One self-signed localhost certificate per test process: RSA key generation is slow on small CI boxes. */
export function certificate(): Promise<{ cert: string; key: string }> {
  certPromise ??= selfsigned
    .generate([{ name: 'commonName', value: 'localhost' }], {
      keySize: 2048,
      algorithm: 'sha256',
      extensions: [
        { name: 'basicConstraints', cA: true },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
      ],
    })
    .then((pems) => ({ cert: pems.cert, key: pems.private }));
  return certPromise;
}

/**
 * An SMTP server on 127.0.0.1 standing in for Google's relay or any other upstream, with failures a
 * test can switch on at runtime. Replies carry no automatic enhanced status codes, so a test
 * writes them the way the real upstream does: `failData(451, '4.3.0 Try again later')`.
 */
export class TestUpstream {
  readonly messages: Received[] = [];
  /** TCP connections accepted (refused ones included). */
  connections = 0;
  /** Successful AUTH commands. */
  logins = 0;
  /** XOAUTH2 logins refused (bad or expired bearer token). */
  tokenRefusals = 0;
  port = 0;
  /** PEM of the STARTTLS certificate (with `tls: true`); pin it through `tls.ca`. */
  cert: string | undefined;

  private server: SMTPServer | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly events = new EventEmitter();
  private readonly rejected = new Map<string, { code: number; text: string }>();
  private dataFailure: Failure | null = null;
  private connectFailure: Failure | null = null;
  private mailFromDrops = 0;
  private key: string | undefined;

  private constructor(private readonly options: TestUpstreamOptions) {}

  static async start(options: TestUpstreamOptions = {}): Promise<TestUpstream> {
    const upstream = new TestUpstream(options);
    if (options.tls) {
      const { cert, key } = await certificate();
      upstream.cert = cert;
      upstream.key = key;
    }
    await upstream.listen(0);
    return upstream;
  }

  /** Refuse this recipient at RCPT TO, e.g. `rejectRecipient('x@example.com', 550, '5.1.1 No such user')`. */
  rejectRecipient(addr: string, code: number, text: string): void {
    this.rejected.set(addr.toLowerCase(), { code, text });
  }

  /** Answer the end of DATA with this reply, `times` times (default: until cleared); null clears. */
  failData(code: null): void;
  failData(code: number, text: string, times?: number): void;
  failData(code: number | null, text = '', times = Infinity): void {
    this.dataFailure = code === null ? null : { code, text, remaining: times };
  }

  /** Answer new connections with this reply instead of 220 and hang up (`421 4.7.0 ...`); null clears. */
  failConnect(code: null): void;
  failConnect(code: number, text: string, times?: number): void;
  failConnect(code: number | null, text = '', times = Infinity): void {
    this.connectFailure = code === null ? null : { code, text, remaining: times };
  }

  /** Kill the socket when the next `times` MAIL FROM arrive: a connection that died unnoticed. */
  dropAtMailFrom(times = 1): void {
    this.mailFromDrops = times;
  }

  /** Hang up on every open connection, like a server ending idle sessions. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  clearFailures(): void {
    this.rejected.clear();
    this.dataFailure = null;
    this.connectFailure = null;
    this.mailFromDrops = 0;
  }

  /** An outage: stop listening and cut every connection. `restart()` comes back on the same port. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    this.dropConnections();
    await closed;
  }

  async restart(): Promise<void> {
    if (this.server) return;
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.stop();
    this.events.removeAllListeners();
  }

  /** Resolves with the messages once `n` have arrived in total; rejects after `timeoutMs`. */
  waitForMessages(n: number, timeoutMs = 30_000): Promise<Received[]> {
    if (this.messages.length >= n) return Promise.resolve(this.messages);
    return new Promise((resolve, reject) => {
      const onMessage = (): void => {
        if (this.messages.length < n) return;
        clearTimeout(timer);
        this.events.off('message', onMessage);
        resolve(this.messages);
      };
      const timer = setTimeout(() => {
        this.events.off('message', onMessage);
        reject(new Error(`waited ${timeoutMs} ms for ${n} messages, got ${this.messages.length}`));
      }, timeoutMs);
      this.events.on('message', onMessage);
    });
  }

  private socketOf(session: SMTPServerSession): Socket | undefined {
    for (const socket of this.sockets) if (socket.remotePort === session.remotePort) return socket;
    return undefined;
  }

  private async listen(port: number): Promise<void> {
    const { tls, requireTls, auth, size, xoauth2 } = this.options;
    const keepRaw = this.options.keepRaw ?? true;
    const disabled: string[] = [];
    if (!tls) disabled.push('STARTTLS');
    if (!auth && !xoauth2) disabled.push('AUTH');
    const mustStartTls = (session: SMTPServerSession): Error | null =>
      requireTls && !session.secure ? smtpError(530, '5.7.0 Must issue a STARTTLS command first') : null;

    const options: SMTPServerOptions = {
      logger: false,
      disableReverseLookup: true,
      hideENHANCEDSTATUSCODES: true,
      hide8BITMIME: this.options.hide8BitMime ?? false,
      hideSMTPUTF8: this.options.hideSmtpUtf8 ?? false,
      disabledCommands: disabled,
      hideSTARTTLS: !tls,
      authOptional: !auth && !xoauth2,
      authMethods: [...(auth ? ['LOGIN', 'PLAIN'] : []), ...(xoauth2 ? ['XOAUTH2'] : [])],
      allowInsecureAuth: !requireTls,
      ...(this.cert && this.key ? { cert: this.cert, key: this.key } : {}),
      ...(size ? { size } : {}),
      onConnect: (_session, callback) => {
        this.connections += 1;
        const failure = take(this.connectFailure);
        callback(failure ? smtpError(failure.code, failure.text) : null);
      },
      onAuth: (login, session, callback) => {
        const refused = mustStartTls(session);
        if (refused) return callback(refused);
        const { refuseLogins } = this.options;
        if (refuseLogins) return callback(smtpError(refuseLogins.code, refuseLogins.text));
        if (login.method === 'XOAUTH2') {
          if (xoauth2?.(login.username ?? '', login.accessToken ?? '')) {
            this.logins += 1;
            return callback(null, { user: login.username });
          }
          this.tokenRefusals += 1;
          if (this.options.xoauth2Style === 'microsoft') return callback(smtpError(535, '5.7.3 Authentication unsuccessful'));
          return callback(null, { data: { status: '401', schemes: 'bearer', scope: 'https://mail.google.com/' } });
        }
        if (!auth || login.username !== auth.user || login.password !== auth.pass) {
          return callback(smtpError(535, '5.7.8 Username and Password not accepted'));
        }
        this.logins += 1;
        callback(null, { user: login.username });
      },
      onMailFrom: (_address, session, callback) => {
        if (this.mailFromDrops > 0) {
          this.mailFromDrops -= 1;
          this.socketOf(session)?.destroy();
          return;
        }
        callback(mustStartTls(session));
      },
      onRcptTo: (address, _session, callback) => {
        const refusal = this.rejected.get(address.address.toLowerCase());
        callback(refusal ? smtpError(refusal.code, refusal.text) : null);
      },
      onData: (stream, session, callback) => {
        const hash = createHash('sha256');
        const chunks: Buffer[] = [];
        let bytes = 0;
        stream.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
          if (keepRaw) chunks.push(chunk);
        });
        stream.on('error', (err) => callback(err));
        stream.on('end', () => {
          if (stream.sizeExceeded) return callback(smtpError(552, '5.3.4 Message size exceeds fixed limit'));
          const failure = take(this.dataFailure);
          if (failure) return callback(smtpError(failure.code, failure.text));
          const user = session.user as string | undefined;
          this.messages.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            raw: keepRaw ? Buffer.concat(chunks, bytes) : null,
            sha256: hash.digest('hex'),
            size: bytes,
            receivedAt: performance.now(),
            ehlo: session.hostNameAppearsAs,
            secure: session.secure,
            mailParams: { ...((session.envelope.mailFrom ? session.envelope.mailFrom.args : null) || {}) },
            ...(user !== undefined ? { authUser: user } : {}),
          });
          this.events.emit('message');
          callback(null, '2.0.0 OK queued');
        });
      },
    };
    const server = new SMTPServer(options);
    server.on('error', () => undefined); // client resets are expected in outage tests
    server.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.server.off('error', reject);
        resolve();
      });
    });
    const address = server.server.address();
    if (address && typeof address === 'object') this.port = address.port;
    this.server = server;
  }
}
