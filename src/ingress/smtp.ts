import type { AddressInfo, Socket } from 'node:net';
import { Writable } from 'node:stream';
import type pino from 'pino';
import { SMTPServer, type SMTPServerAddress, type SMTPServerAuthentication, type SMTPServerAuthenticationResponse } from 'smtp-server';
import type { SMTPServerDataStream, SMTPServerError, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { networkMatcher, type ListenAddress } from '../config/net.js';
import type { Config } from '../config/schema.js';
import { CrlfNormalizer } from '../message/crlf.js';
import { HEADER_SCAN_BYTES, subjectOf } from '../message/headers.js';
import type { BodyWriter } from '../spool/body.js';
import type { SpoolStore } from '../spool/store.js';
import { noteStreamedBytes } from '../memory.js';
import { drain } from '../streams.js';
import type { DiskSpace } from '../spool/diskSpace.js';
import { EnvelopeCheck } from './addresses.js';
import { DiskGuard } from './diskGuard.js';
import { removeGreetingDelay } from './greetDelay.js';
import { PasswordVerifier } from './passwords.js';
import { REPLY, smtpError } from './replies.js';
import { loadTlsMaterial, tlsServerOptions, type TlsServerOptions } from './tls.js';

export interface SmtpIngressOptions {
  config: Config;
  spool: SpoolStore;
  logger: pino.Logger;
  /** How long stop() lets a message in flight finish before the connection is cut. */
  closeTimeoutMs?: number;
  /** A device began a mail transaction (MAIL FROM accepted): a message is probably on its way. */
  onTransaction?: () => void;
  /** Free space in data_dir: below smtp.min_free_bytes, MAIL FROM hears 452 4.3.1. */
  diskSpace?: DiskSpace;
}

const SOCKET_TIMEOUT_MS = 60_000;
removeGreetingDelay();
const DEFAULT_CLOSE_TIMEOUT_MS = 10_000;

/**
 * The SMTP side devices talk to. Every message is streamed into the spool and committed (fsynced)
 * before the client hears 250; whatever goes wrong before that, the client hears 4xx/5xx and
 * nothing of the message stays behind.
 */
export class SmtpIngress {
  private readonly config: Config;
  private readonly spool: SpoolStore;
  private readonly logger: pino.Logger;
  private readonly closeTimeoutMs: number;
  private readonly onTransaction: () => void;
  private readonly isAllowedClient: (address: string) => boolean;
  private readonly passwordHashes: Map<string, string>;
  private readonly envelope: EnvelopeCheck;
  private readonly verifier = new PasswordVerifier();
  private readonly diskGuard: DiskGuard;
  private servers: SMTPServer[] = [];
  private readonly sockets = new Set<Socket>();

  constructor(options: SmtpIngressOptions) {
    this.config = options.config;
    this.spool = options.spool;
    this.logger = options.logger;
    this.closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.onTransaction = options.onTransaction ?? (() => {});
    this.diskGuard = new DiskGuard({ disk: options.diskSpace, logger: options.logger });
    const { smtp } = this.config;
    this.isAllowedClient = networkMatcher(smtp.allow_networks);
    this.passwordHashes = new Map(smtp.auth.users.map((u) => [u.username, u.password_hash]));
    this.envelope = new EnvelopeCheck({ allowRecipientDomains: smtp.allow_recipient_domains });
  }

  /** Binds every `smtp.listen` address; returns the addresses actually bound (port 0 → real port). */
  async start(): Promise<ListenAddress[]> {
    const { tls } = this.config.smtp;
    const tlsOptions = tls.mode === 'none' ? undefined : tlsServerOptions(tls, await loadTlsMaterial(this.config));
    const bound: ListenAddress[] = [];
    try {
      for (const listen of this.config.smtp.listen) {
        const server = new SMTPServer(this.serverOptions(tlsOptions));
        server.on('error', (err) => this.onServerError(err));
        server.server.on('connection', (socket: Socket) => {
          this.sockets.add(socket);
          socket.once('close', () => this.sockets.delete(socket));
        });
        this.servers.push(server);
        bound.push(await listenOn(server, listen));
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.logger.info({ listen: bound, tls: tls.mode, auth: this.passwordHashes.size > 0 }, 'smtp listening');
    return bound;
  }

  /**
   * Stops listening. Idle clients are told 421 at once; a message in flight gets `closeTimeoutMs`
   * to finish, then every connection left is cut, so stop() never waits on a silent client.
   */
  async stop(): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            for (const connection of server.connections) {
              // Outside a mail transaction there is nothing to lose by hanging up now.
              if (!connection.session.envelope?.mailFrom) connection.send(421, REPLY.shuttingDown);
            }
          }),
      ),
    );
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  private serverOptions(tls: TlsServerOptions | undefined): SMTPServerOptions {
    const { smtp, hostname } = this.config;
    const hasUsers = this.passwordHashes.size > 0;
    const disabledCommands: string[] = [];
    if (!hasUsers) disabledCommands.push('AUTH');
    // Disabled, not just hidden: smtp-server would otherwise run STARTTLS with its built-in test key.
    if (smtp.tls.mode === 'none') disabledCommands.push('STARTTLS');
    return {
      ...tls,
      secure: smtp.tls.mode === 'implicit',
      name: hostname,
      banner: 'relaybox',
      size: smtp.max_message_bytes,
      authMethods: ['PLAIN', 'LOGIN'],
      authOptional: !(hasUsers && smtp.auth.required),
      authRequiredMessage: REPLY.authRequired,
      // With tls.mode none the operator has said the devices cannot do TLS (old scanners on a
      // trusted LAN); refusing AUTH then would only lock them out. With starttls, credentials
      // must never cross the wire in clear, so AUTH waits for STARTTLS (538 before it).
      allowInsecureAuth: smtp.tls.mode === 'none',
      disabledCommands,
      hideSTARTTLS: smtp.tls.mode === 'none',
      // The client string uses the HELO name; a PTR lookup for LAN addresses mostly times out
      // (1.5 s per connection) and adds nothing.
      disableReverseLookup: true,
      logger: false,
      socketTimeout: SOCKET_TIMEOUT_MS,
      closeTimeout: this.closeTimeoutMs,
      onConnect: (session, callback) => this.onConnect(session, callback),
      onAuth: (auth, session, callback) => this.onAuth(auth, session, callback),
      // Not at connect: monitoring tools open connections that never carry mail.
      // Lenient: smtp-server's strict parser answers 501 to `a@example.com.`; addresses.ts checks the rest as strictly.
      lenientAddressParsing: true,
      onMailFrom: (address, _session, callback) => {
        const refusal = this.envelope.sender(address) ?? this.diskGuard.mailFrom(address);
        if (refusal) return callback(refusal);
        this.onTransaction();
        callback();
      },
      onRcptTo: (address, session, callback) => this.onRcptTo(address, session, callback),
      onData: (stream, session, callback) => {
        this.receive(stream, session).then(
          (id) => callback(null, REPLY.queued(id)),
          // Anything but a prepared reply is a bug; the client still hears 451, never details.
          (err: SMTPServerError) => callback(err.responseCode ? err : smtpError(451, REPLY.tryAgain)),
        );
      },
    };
  }

  /** Mostly clients that vanish mid-session; a failed TLS handshake is worth a person's look. */
  private onServerError(err: Error & { code?: string; remoteAddress?: string }): void {
    const fields = { err: err.message, code: err.code, address: err.remoteAddress };
    const legacy = /UNSUPPORTED_PROTOCOL|NO_SHARED_CIPHER/.test(err.code ?? '');
    if (legacy) this.logger.warn(fields, 'smtp TLS handshake failed: an old device may need smtp.tls.min_version TLSv1');
    else this.logger[/SSL|TLS/.test(err.code ?? '') ? 'warn' : 'debug'](fields, 'smtp connection error');
  }

  private onConnect(session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    if (this.isAllowedClient(session.remoteAddress)) {
      this.logger.debug({ address: session.remoteAddress }, 'smtp connection');
      return callback();
    }
    this.logger.warn({ address: session.remoteAddress }, 'smtp connection refused: address not in smtp.allow_networks');
    callback(smtpError(554, REPLY.notAllowed(session.remoteAddress)));
  }

  private onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): void {
    const username = auth.username ?? '';
    const refuse = () => {
      this.logger.warn({ address: session.remoteAddress, username, method: auth.method }, 'smtp authentication failed');
      callback(null, { responseCode: 535, message: REPLY.badCredentials });
    };
    // PLAIN may name a second identity to act as; relaybox has no such proxy rights to grant.
    if (auth.method === 'PLAIN' && auth.authzid && auth.authcid && auth.authzid !== auth.authcid) return refuse();
    this.verifier.verify(username, auth.password ?? '', this.passwordHashes.get(username)).then(
      (ok) => {
        if (!ok) return refuse();
        this.logger.debug({ address: session.remoteAddress, username }, 'smtp authenticated');
        callback(null, { user: username });
      },
      (err: unknown) => {
        this.logger.error({ err, username }, 'smtp password check failed');
        callback(smtpError(454, REPLY.authUnavailable));
      },
    );
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const refusal = this.envelope.recipient(address);
    if (!refusal) return callback();
    if (refusal.relayDenied) this.logger.warn({ address: session.remoteAddress, rcpt: address.address }, 'smtp recipient refused: domain not in smtp.allow_recipient_domains');
    callback(refusal.error);
  }

  /** Streams one message into the spool and commits it; resolves with its id. */
  private async receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<number> {
    const writer = this.spool.receive();
    const limit = this.config.smtp.max_message_bytes;
    const head: Buffer[] = [];
    let headBytes = 0;
    let size = 0;
    let oversized = false;
    let storeError: unknown;
    // Never fails: after an oversize or a spool error it keeps draining, so the client finishes
    // DATA and then hears the refusal, instead of an answer in the middle of its upload.
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        size += chunk.length;
        if (headBytes < HEADER_SCAN_BYTES) {
          const part = chunk.subarray(0, HEADER_SCAN_BYTES - headBytes);
          head.push(part);
          headBytes += part.length;
        }
        if (oversized || storeError !== undefined) return done();
        if (size > limit) {
          oversized = true;
          this.discard(writer);
          return done();
        }
        try {
          writer.write(chunk);
          noteStreamedBytes(chunk.length);
        } catch (err) {
          storeError = err;
          this.discard(writer);
        }
        done();
      },
    });
    try {
      await drain(stream, new CrlfNormalizer(), sink);
    } catch (err) {
      this.discard(writer);
      this.logger.debug({ address: session.remoteAddress, err: (err as Error).message }, 'smtp client went away during DATA');
      throw smtpError(451, REPLY.tryAgain);
    }

    const client = `${session.remoteAddress} (${session.hostNameAppearsAs || session.clientHostname})`;
    if (oversized || stream.sizeExceeded) {
      this.discard(writer);
      this.logger.warn({ client, size, limit }, 'smtp message refused: larger than smtp.max_message_bytes');
      throw smtpError(552, REPLY.tooBig);
    }
    if (storeError !== undefined) throw this.diskGuard.storeFailed(storeError, { client, what: 'could not write a message body to the spool' });

    const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const recipients = session.envelope.rcptTo.map((r) => r.address);
    const authUser = typeof session.user === 'string' ? session.user : null;
    let id: number;
    try {
      id = await this.spool.accept(writer, { mailFrom: from, recipients, client, authUser, subject: subjectOf(Buffer.concat(head)) });
    } catch (err) {
      this.discard(writer);
      throw this.diskGuard.storeFailed(err, { client, what: 'could not commit a message to the spool' });
    }
    this.logger.info({ id, from, rcpts: recipients.length, size: writer.size, client, auth_user: authUser }, 'accepted');
    return id;
  }

  /** Drops a partial body; if even that fails, recoverInterrupted() removes it at next start. */
  private discard(writer: BodyWriter): void {
    try {
      this.spool.discard(writer);
    } catch (err) {
      this.logger.error({ err }, 'could not remove a partial message body from the spool');
    }
  }
}

function listenOn(server: SMTPServer, { host, port }: ListenAddress): Promise<ListenAddress> {
  return new Promise((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(port, host, () => {
      server.server.off('error', reject);
      const address = server.server.address() as AddressInfo;
      resolve({ host: address.address, port: address.port });
    });
  });
}
