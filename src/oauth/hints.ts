import { TokenError } from './errors.js';
import { MICROSOFT, authorizeCommand, type OAuthEndpoints } from './providers.js';

/** What a hint needs to know about the upstream; no secrets. */
export interface HintContext {
  upstream: string;
  user: string;
  endpoints: OAuthEndpoints;
  /** The service account's client_email, for its hints. */
  serviceAccount?: string;
  /** An app-only client proves itself with a certificate instead of a secret. */
  credential?: 'certificate';
}

/** The application permission an app-only token needs for its scope. */
function appPermission(ctx: HintContext): string {
  return ctx.endpoints.scope === MICROSOFT.graphScope ? 'Mail.Send application permission' : 'SMTP.SendAsApp application permission';
}

/**
 * Turns a token endpoint's refusal into what a person must do. A dead refresh token is the most
 * common silent failure of OAuth relays, so it is named exactly (`invalid_grant`) with the fix.
 */
export function explainRefusal(err: TokenError, ctx: HintContext): TokenError {
  if (err.failure !== 'refused') return err;
  const { provider, grant } = ctx.endpoints;
  const code = err.oauthError ?? '';
  const rerun = authorizeCommand(provider, ctx.upstream);
  let message = err.message;
  if (grant === 'refresh_token' && code === 'invalid_grant') {
    const why =
      provider === 'google'
        ? 'a password change revokes Gmail tokens; an app in "Testing" status ends them after 7 days'
        : `Microsoft ends refresh tokens unused for 90 days${detail(err) ? `; ${detail(err)}` : ''}`;
    message = `invalid_grant: the refresh token was revoked or expired (${why}) — run: ${rerun}`;
  } else if (grant === 'refresh_token' && (code === 'invalid_client' || code === 'unauthorized_client')) {
    message = `${err.message} — check client_id and client_secret of upstream ${ctx.upstream}`;
  } else if (grant === 'service_account' && code === 'unauthorized_client') {
    message =
      `unauthorized_client: service account ${ctx.serviceAccount ?? ''} may not act for ${ctx.user} — in the Google Admin console ` +
      `(Security > API controls > Domain-wide delegation) allow its client ID with scope ${ctx.endpoints.scope}`;
  } else if (grant === 'service_account' && code === 'invalid_grant') {
    message = `${err.message} — check that ${ctx.user} is a user of your Workspace domain, that the service account key is still active, and the clock (timedatectl)`;
  } else if (grant === 'client_credentials' && code === 'invalid_client') {
    const what = ctx.credential === 'certificate' ? 'the certificate is not (or no longer) uploaded to the app' : 'the client secret is wrong or expired';
    message = `${err.message} — ${what} (Entra admin center > App registrations > Certificates & secrets)`;
  } else if (grant === 'client_credentials') {
    message = `${err.message} — check tenant_id, client_id and the ${appPermission(ctx)} (admin consent)`;
  }
  return new TokenError(message, 'refused', err.oauthError);
}

/** No refresh token anywhere: the person has not run the authorization yet. */
export function missingRefreshToken(ctx: HintContext): TokenError {
  const device = ctx.endpoints.provider === 'microsoft' ? ' (add --device on a box without a browser)' : '';
  return new TokenError(`no refresh token for upstream ${ctx.upstream} — run: ${authorizeCommand(ctx.endpoints.provider, ctx.upstream)}${device}`, 'refused');
}

/** The SMTP server refused a token fresh from the endpoint: the token is fine, its rights are not. */
export function smtpRefusalHint(ctx: HintContext): string {
  const { provider, grant } = ctx.endpoints;
  if (provider === 'google' && grant === 'service_account') {
    return `Gmail refused a fresh token for ${ctx.user}: domain-wide delegation must include scope ${ctx.endpoints.scope}`;
  }
  if (provider === 'google') {
    return `Gmail refused a fresh token for ${ctx.user}: authorize as that very account with scope ${ctx.endpoints.scope} (${authorizeCommand('google', ctx.upstream)})`;
  }
  const app = grant === 'client_credentials' ? ', and the app needs SMTP.SendAsApp plus an Exchange service principal with rights on the mailbox' : '';
  return `Microsoft 365 refused a fresh token for ${ctx.user}: SMTP AUTH must be enabled for the mailbox (Set-CASMailbox -SmtpClientAuthenticationDisabled $false)${app}`;
}

/** Microsoft's `AADSTS…` description, without the generic `invalid_grant:` prefix. */
function detail(err: TokenError): string {
  return err.message.replace(/^invalid_grant:?\s*/, '');
}
