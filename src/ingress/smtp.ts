import type { Socket } from 'node:net';
import type pino from 'pino';
import { SMTPServer, type SMTPServerAddress, type SMTPServerError, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { canonicalDomain } from '../config/domains.js';
import { networkMatcher, type ListenAddress } from '../config/net.js';
import type { Config } from '../config/schema.js';
import type { RelayEvents } from '../events.js';
import type { SpoolStore } from '../spool/store.js';
import { MemoryBudget } from '../memoryBudget.js';
import type { DiskSpace } from '../spool/diskSpace.js';
import { EnvelopeCheck } from './addresses.js';
import { SmtpAuthenticator } from './auth.js';
import { authNeedsTls, cleartextAuthWarning, offerAuthOverTlsOnly, type AuthOfferOptions } from './authOffer.js';
import { DiskGuard } from './diskGuard.js';
import { copyDataTail } from './dataTail.js';
import { removeGreetingDelay } from './greetDelay.js';
import { ConnectionLimits } from './limits.js';
import { closeServer, listenOn, logServerError } from './listen.js';
import { acceptLooseEnvelopes, type LooseEnvelopeOptions } from './looseEnvelope.js';
import { MessageReceiver } from './receive.js';
import { REPLY, smtpError } from './replies.js';
import { SenderPolicy } from './senderPolicy.js';
import { SizeGuard } from './sizeGuard.js';
import { wordSizeRefusals, type SizeRefusalOptions } from './sizeReply.js';
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
acceptLooseEnvelopes();
offerAuthOverTlsOnly();
wordSizeRefusals();
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
  private readonly envelope: EnvelopeCheck;
  private readonly senders: SenderPolicy;
  /** What a bare MAIL FROM/RCPT TO name is qualified with; undefined when the hostname is no domain. */
  private readonly defaultDomain: string | undefined;
  private readonly diskGuard: DiskGuard;
  private readonly auth: SmtpAuthenticator;
  private readonly limits: ConnectionLimits;
  private readonly receiver: MessageReceiver;
  private readonly sizes: SizeGuard;
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
    this.envelope = new EnvelopeCheck({ allowRecipientDomains: smtp.allow_recipient_domains });
    this.defaultDomain = smtp.default_domain || canonicalDomain(this.config.hostname);
    this.senders = new SenderPolicy({ users: smtp.auth.users });
    this.auth = new SmtpAuthenticator({ users: smtp.auth.users, logger: this.logger, events: options.events });
    this.limits = ConnectionLimits.of(smtp, options.evictSilentAfterMs);
    this.sizes = new SizeGuard(this.config);
    this.receiver = new MessageReceiver({
      spool: this.spool,
      logger: this.logger,
      maxMessageBytes: smtp.max_message_bytes,
      sizes: this.sizes,
      bodyBudget: new MemoryBudget(smtp.max_buffered_bytes),
      limits: this.limits,
      diskGuard: this.diskGuard,
      senders: this.senders,
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
    this.logger.info({ listen: bound, tls: tls.mode, auth: this.auth.hasUsers }, 'smtp listening');
    const cleartext = cleartextAuthWarning(this.config.smtp);
    if (cleartext) this.logger.warn(cleartext);
    if (!this.defaultDomain) this.logger.warn({ hostname: this.config.hostname }, 'smtp: a bare MAIL FROM/RCPT TO name hears 501: the hostname is no domain name to qualify it with; set smtp.default_domain');
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

  private serverOptions(tls: TlsServerOptions | undefined): SMTPServerOptions & AuthOfferOptions & LooseEnvelopeOptions & SizeRefusalOptions {
    const { smtp, hostname } = this.config;
    // Disabled, not just hidden: smtp-server would otherwise run STARTTLS with its built-in test key.
    const disabledCommands = smtp.tls.mode === 'none' ? ['STARTTLS'] : [];
    const needsTls = authNeedsTls(smtp);
    return {
      ...tls,
      secure: smtp.tls.mode === 'implicit',
      name: hostname,
      banner: 'relaybox',
      // The largest message any route can take: smtp-server answers a larger MAIL FROM SIZE= with 552 5.3.4.
      size: this.sizes.advertised,
      relayboxSizeRefusal: (declared) => this.sizes.mailFromRefusal(declared),
      authMethods: ['PLAIN', 'LOGIN'],
      authOptional: !(this.auth.hasUsers && smtp.auth.required),
      authRequiredMessage: REPLY.authRequired,
      // AUTH is always on offer (without users, any login is taken and ignored); whether it waits
      // for TLS is authOffer.ts's to say. smtp-server's own 538 stays underneath as a backstop.
      relayboxAuthNeedsTls: needsTls,
      allowInsecureAuth: !needsTls,
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
      onAuth: (auth, session, callback) => this.auth.onAuth(auth, session, callback),
      // Not at connect: monitoring tools open connections that never carry mail.
      // Lenient: smtp-server's strict parser answers 501 to `a@example.com.`; addresses.ts checks the rest as strictly.
      lenientAddressParsing: true,
      // `MAIL FROM:scanner@corp.example`, `RCPT TO:<admin>`: see looseEnvelope.ts.
      relayboxEnvelope: { defaultDomain: this.defaultDomain },
      onMailFrom: (address, session, callback) => this.onMailFrom(address, session, callback),
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
    const locked = this.config.smtp.auth.required ? this.auth.lockedOut(address) : null;
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

  private onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const refusal = this.envelope.sender(address) ?? this.notAllowedSender(address, session) ?? this.diskGuard.mailFrom(address);
    if (refusal) return callback(refusal);
    this.onTransaction();
    callback();
  }

  /** After envelope.sender(): the address is canonical by then, as allowed_from's patterns are. */
  private notAllowedSender(address: SMTPServerAddress, session: SMTPServerSession): SMTPServerError | null {
    const refusal = this.senders.envelope(session, address.address);
    if (refusal) this.logger.warn({ address: session.remoteAddress, auth_user: session.user, from: address.address }, 'smtp sender refused: not in the allowed_from of its login');
    return refusal;
  }

  private onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    const refusal = this.envelope.recipient(address);
    if (!refusal) return callback(this.sizes.recipientRefusal(session, address.address));
    if (refusal.relayDenied) this.logger.warn({ address: session.remoteAddress, rcpt: address.address }, 'smtp recipient refused: domain not in smtp.allow_recipient_domains');
    callback(refusal.error);
  }
}
