import type pino from 'pino';
import type { SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerError, SMTPServerSession } from 'smtp-server';
import type { RelayEvents } from '../events.js';
import { SmtpAuthGuard } from './authGuard.js';
import { PasswordVerifier } from './passwords.js';
import { REPLY, smtpError } from './replies.js';

type AuthCallback = (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void;

export interface SmtpAuthenticatorOptions {
  /** smtp.auth.users; none: any credentials are taken and ignored. */
  users: { username: string; password_hash: string }[];
  logger: pino.Logger;
  /** Where lockouts after failed logins are announced (metrics, MQTT, the console). */
  events?: RelayEvents;
}

/**
 * What a session that logged in while no users are configured is logged in as: smtp-server needs
 * someone, relaybox records no one (receive.ts keeps only a string user as the message's auth_user).
 */
export const NOBODY = Object.freeze({ credentialsIgnored: true });

/** Client addresses told about once; past this many the list starts over (a /8 may hold many). */
const MAX_IGNORED_NOTED = 1024;

/**
 * SMTP AUTH. With users configured: their scrypt hashes, with lockouts after repeated failures
 * (authGuard.ts). Without: a device still set up with its old Gmail login keeps working — any
 * credentials are accepted and ignored, and smtp.allow_networks stays the only gate.
 */
export class SmtpAuthenticator {
  readonly hasUsers: boolean;
  private readonly hashes: Map<string, string>;
  private readonly verifier = new PasswordVerifier();
  private readonly guard: SmtpAuthGuard;
  private readonly ignoredFrom = new Set<string>();

  constructor(private readonly options: SmtpAuthenticatorOptions) {
    this.hashes = new Map(options.users.map((u) => [u.username, u.password_hash]));
    this.hasUsers = this.hashes.size > 0;
    this.guard = new SmtpAuthGuard({ logger: options.logger, events: options.events });
  }

  /** The refusal while `address` is locked out after failed logins; null when it may try. */
  lockedOut(address: string): SMTPServerError | null {
    return this.guard.refusal(address);
  }

  onAuth(auth: SMTPServerAuthentication, session: SMTPServerSession, callback: AuthCallback): void {
    if (!this.hasUsers) return this.ignore(auth, session, callback);
    const username = auth.username ?? '';
    const address = session.remoteAddress;
    const locked = this.guard.refusal(address);
    if (locked) return callback(locked);
    const refuse = () => {
      this.options.logger.warn({ address, username, method: auth.method }, 'smtp authentication failed');
      const lockout = this.guard.failed(address);
      if (lockout) callback(lockout);
      else callback(null, { responseCode: 535, message: REPLY.badCredentials });
    };
    // PLAIN may name a second identity to act as; relaybox has no such proxy rights to grant.
    if (auth.method === 'PLAIN' && auth.authzid && auth.authcid && auth.authzid !== auth.authcid) return refuse();
    this.verifier.verify(username, auth.password ?? '', this.hashes.get(username)).then(
      (ok) => {
        if (!ok) return refuse();
        this.guard.succeeded(address);
        this.options.logger.debug({ address, username }, 'smtp authenticated');
        callback(null, { user: username });
      },
      (err: unknown) => {
        this.options.logger.error({ err, username }, 'smtp password check failed');
        callback(smtpError(454, REPLY.authUnavailable));
      },
    );
  }

  /**
   * Info, not warn: the mail flows and relaybox needs nothing fixed. Once per client address, so
   * the operator learns which devices still hold a login they could drop — it may be a live
   * mailbox password, sent in clear where TLS is off. The password itself is never logged.
   */
  private ignore(auth: SMTPServerAuthentication, session: SMTPServerSession, callback: AuthCallback): void {
    const address = session.remoteAddress;
    if (!this.ignoredFrom.has(address)) {
      if (this.ignoredFrom.size >= MAX_IGNORED_NOTED) this.ignoredFrom.clear();
      this.ignoredFrom.add(address);
      this.options.logger.info(
        { address, username: auth.username, method: auth.method, tls: session.secure },
        'smtp AUTH accepted and ignored: no smtp.auth.users are configured, smtp.allow_networks decides (the device can drop its login)',
      );
    }
    callback(null, { user: NOBODY });
  }
}
