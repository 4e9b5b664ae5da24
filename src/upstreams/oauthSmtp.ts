import type { Logger } from 'pino';
import { TokenError, reasonOf } from '../oauth/errors.js';
import { smtpRefusalHint, type HintContext } from '../oauth/hints.js';
import type { AccessToken, TokenSource } from '../oauth/tokenSource.js';
import type { UpstreamContext } from './types.js';
import { SmtpUpstream, UPSTREAM_VERDICT, describeSmtp, toUpstreamError, type SmtpTarget } from './smtp.js';
import { UpstreamError, type BodyFactory, type Envelope, type SendOptions, type SendResult, type Upstream } from './types.js';

/**
 * A token endpoint's refusal is the same verdict as `535` at AUTH — credentials a person must fix —
 * so it carries that code: delivery marks the upstream auth_failed and defers the mail.
 */
const REFUSED_CODE = 535;

/** How a token failure is reported as the upstream's error. */
export function tokenFailureVerdict(err: unknown): UpstreamError {
  if (err instanceof TokenError) {
    const problem = err.failure === 'clock' ? 'clock' : err.failure === 'refused' ? 'auth_failed' : undefined;
    return new UpstreamError(err.message, err.failure === 'refused' ? REFUSED_CODE : null, 'auth', problem);
  }
  return new UpstreamError(`cannot get an OAuth access token: ${reasonOf(err)}`, null, 'auth');
}

/**
 * SMTP with XOAUTH2 (Gmail, Microsoft 365). The pool asks for a token per new connection; a
 * refused token is refreshed once and tried again — by nodemailer when the server answers
 * `334 <json>` first (Gmail), here when it answers 535 straight away (Microsoft) — and a second
 * refusal is an auth failure with a hint on what to fix.
 */
export class OAuthSmtpUpstream implements Upstream {
  readonly name: string;
  readonly type: string;
  private readonly smtp: SmtpUpstream;
  private readonly logger: Logger;
  /** Refreshes forced by a refusal; tells whether the one retry was already spent in a send. */
  private renewals = 0;
  private readonly tokenVerdicts = new WeakSet<UpstreamError>();

  constructor(
    private readonly target: Omit<SmtpTarget, 'xoauth2' | 'auth'> & { user: string },
    private readonly tokens: { source: TokenSource; hints: HintContext; describe(): string },
    context: UpstreamContext,
  ) {
    this.name = target.name;
    this.type = target.type;
    this.logger = context.logger.child({ upstream: target.name });
    this.smtp = new SmtpUpstream({ ...target, xoauth2: { user: target.user, provision: (_user, renew, done) => this.provision(renew, done) } }, context);
  }

  describe(): string {
    return `${describeSmtp({ ...this.target, xoauth2: { user: this.target.user, provision: () => undefined } })}; ${this.tokens.describe()}`;
  }

  async send(envelope: Envelope, body: BodyFactory, options?: SendOptions): Promise<SendResult> {
    // Asked before connecting: a dead refresh token or a 1970 clock is reported as what it is,
    // and an already-authenticated pooled connection never hides it.
    await this.token();
    const renewalsBefore = this.renewals;
    try {
      return await this.smtp.send(envelope, body, options);
    } catch (err) {
      const failure = toUpstreamError(err);
      if (!this.isLoginRefusal(failure) || this.renewals !== renewalsBefore) throw this.explained(failure);
      this.logger.info({ reply: failure.reply }, 'XOAUTH2 refused the access token; refreshing it once');
      this.forceRenewal();
    }
    await this.token();
    try {
      return await this.smtp.send(envelope, body, options);
    } catch (err) {
      throw this.explained(toUpstreamError(err));
    }
  }

  async close(): Promise<void> {
    await this.smtp.close();
  }

  signedInAgain(): void {
    this.tokens.source.invalidate();
  }

  private async token(): Promise<AccessToken> {
    try {
      return await this.tokens.source.getToken();
    } catch (err) {
      throw this.verdictFor(err);
    }
  }

  private forceRenewal(): void {
    this.renewals += 1;
    this.tokens.source.invalidate();
  }

  /** nodemailer's provisionCallback: renew=true after the server refused the token it had. */
  private provision(renew: boolean, done: (err: Error | null, accessToken?: string, expires?: number) => void): void {
    if (renew) this.forceRenewal();
    this.tokens.source.getToken().then(
      (token) => done(null, token.accessToken, token.expiresAt),
      (err: unknown) => done(Object.assign(new Error(reasonOf(err)), { [UPSTREAM_VERDICT]: this.verdictFor(err) })),
    );
  }

  private verdictFor(err: unknown): UpstreamError {
    const verdict = tokenFailureVerdict(err);
    this.tokenVerdicts.add(verdict);
    return verdict;
  }

  /** The SMTP server said no at AUTH (not the token endpoint, not the network). */
  private isLoginRefusal(failure: UpstreamError): boolean {
    return failure.phase === 'auth' && failure.code !== null && failure.code >= 500 && !this.tokenVerdicts.has(failure);
  }

  private explained(failure: UpstreamError): UpstreamError {
    if (!this.isLoginRefusal(failure)) return failure;
    return new UpstreamError(`${failure.reply} — ${smtpRefusalHint(this.tokens.hints)}`, failure.code, failure.phase);
  }
}
