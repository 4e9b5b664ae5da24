import type { Socket } from 'node:net';
import type pino from 'pino';
import { SMTPServer, type SMTPServerAddress, type SMTPServerAuthentication, type SMTPServerAuthenticationResponse } from 'smtp-server';
import type { SMTPServerError, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { networkMatcher, type ListenAddress } from '../config/net.js';
import type { Config } from '../config/schema.js';
import type { RelayEvents } from '../events.js';
import type { SpoolStore } from '../spool/store.js';
import { MemoryBudget } from '../memoryBudget.js';
import type { DiskSpace } from '../spool/diskSpace.js';
import { EnvelopeCheck } from './addresses.js';
import { DiskGuard } from './diskGuard.js';
import { SmtpAuthGuard } from './authGuard.js';
import { copyDataTail } from './dataTail.js';
import { removeGreetingDelay } from './greetDelay.js';
import { ConnectionLimits } from './limits.js';
import { closeServer, listenOn, logServerError } from './listen.js';
import { PasswordVerifier } from './passwords.js';
import { MessageReceiver } from './receive.js';
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
  /** Where lockouts after failed logins are announced (metrics, MQTT, the console). */
  events?: RelayEvents;
  /** With every session taken, one silent this long makes room for a new client (default 5 s). */
  evictSilentAfterMs?: number;
}

removeGreetingDelay();
copyDataTail();
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
  private readonly authGuard: SmtpAuthGuard;
  private readonly limits: ConnectionLimits;
  private readonly receiver: MessageReceiver;
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
    this.authGuard = new SmtpAuthGuard({ logger: this.logger, events: options.events });
    this.limits = ConnectionLimits.of(smtp, options.evictSilentAfterMs);
    this.receiver = new MessageReceiver({
      spool: this.spool,
      logger: this.logger,
      maxMessageBytes: smtp.max_message_bytes,
      bodyBudget: new MemoryBudget(smtp.max_buffered_bytes),
      limits: this.limits,
      diskGuard: this.diskGuard,
    });
  }

  /** Binds every `smtp.listen` address; returns the addresses actually bound (port 0 → real port). */
  async start(): Promise<ListenAddress[]> {
    const { tls } = this.config.smtp;
    const tlsOptions = tls.mode === 'none' ? undefined : tlsServerOptions(tls, await loadTlsMaterial(this.config));
    const bound: ListenAddress[] = [];
    try {
      for (const listen of this.config.smtp.listen) {
        const server = new SMTPServer(this.serverOptions(tlsOptions));
        server.on('error', (err) => logServerError(this.logger, err));
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
    await Promise.all(servers.map((server) => closeServer(server, REPLY.shuttingDown)));
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
      socketTimeout: smtp.timeouts.command,
      // Sessions are counted in onConnect over all listen addresses (one over, to make room by
      // closing a silent one); this also bounds sockets still in an implicit-TLS handshake.
      maxClients: smtp.max_connections + 1,
      closeTimeout: this.closeTimeoutMs,
      onConnect: (session, callback) => this.onConnect(session, callback),
      onClose: (session) => this.limits.release(session),
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
        this.receiver.receive(stream, session).then(
          (id) => callback(null, REPLY.queued(id)),
          // Anything but a prepared reply is a bug; the client still hears 451, never details.
          (err: SMTPServerError) => callback(err.responseCode ? err : smtpError(451, REPLY.tryAgain)),
        );
      },
    };
  }

  private onConnect(session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const address = session.remoteAddress;
    if (!this.isAllowedClient(address)) {
      this.logger.warn({ address }, 'smtp connection refused: address not in smtp.allow_networks');
      return callback(smtpError(554, REPLY.notAllowed(address)));
    }
    // When every session must log in, a locked-out address has nothing to do here.
    const locked = this.config.smtp.auth.required ? this.authGuard.refusal(address) : null;
    if (locked) return callback(locked);
    const full = this.limits.admit(session, this.servers.flatMap((server) => [...server.connections]));
    if (full) {
      // A flood would write a line per connection: one a minute, with the count, is enough.
      const refused = this.limits.refusedToLog();
      if (refused) this.logger.warn({ address, refused, open: this.limits.open }, 'smtp connections refused: smtp.max_connections or max_connections_per_ip reached');
      return callback(full);
    }
    this.logger.debug({ address }, 'smtp connection');
    callback();
  }

  private onAuth(
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): void {
    const username = auth.username ?? '';
    const address = session.remoteAddress;
    const locked = this.authGuard.refusal(address);
    if (locked) return callback(locked);
    const refuse = () => {
      this.logger.warn({ address, username, method: auth.method }, 'smtp authentication failed');
      const lockout = this.authGuard.failed(address);
      if (lockout) callback(lockout);
      else callback(null, { responseCode: 535, message: REPLY.badCredentials });
    };
    // PLAIN may name a second identity to act as; relaybox has no such proxy rights to grant.
    if (auth.method === 'PLAIN' && auth.authzid && auth.authcid && auth.authzid !== auth.authcid) return refuse();
    this.verifier.verify(username, auth.password ?? '', this.passwordHashes.get(username)).then(
      (ok) => {
        if (!ok) return refuse();
        this.authGuard.succeeded(address);
        this.logger.debug({ address, username }, 'smtp authenticated');
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
}
