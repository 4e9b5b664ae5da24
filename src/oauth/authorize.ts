import { createHash, randomBytes } from 'node:crypto';
import { TokenError } from './errors.js';
import { requestToken, type TokenResponse } from './http.js';

/** RFC 7636: the verifier stays here; only its SHA-256 travels through the browser. */
export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** An unguessable value the redirect must bring back (CSRF protection, RFC 6749 §10.12). */
export function newState(): string {
  return randomBytes(16).toString('base64url');
}

export interface AuthorizationRequest {
  authUrl: string;
  clientId: string;
  redirectUri: string;
  scope: string;
  state: string;
  challenge: string;
  loginHint?: string;
  /** Provider extras, e.g. Google's access_type=offline and prompt=consent. */
  extra?: Record<string, string>;
}

export function authorizationUrl(request: AuthorizationRequest): string {
  const url = new URL(request.authUrl);
  const params: Record<string, string> = {
    client_id: request.clientId,
    redirect_uri: request.redirectUri,
    response_type: 'code',
    scope: request.scope,
    state: request.state,
    code_challenge: request.challenge,
    code_challenge_method: 'S256',
    ...(request.loginHint ? { login_hint: request.loginHint } : {}),
    ...request.extra,
  };
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.toString();
}

/** Why a redirect gave no code, for words in the person's language (src/oauth/signInErrors.ts). */
export interface AuthorizationErrorDetail {
  reason: 'refused' | 'no-code' | 'state' | 'timeout';
  /** The provider's `error` (`access_denied`, `consent_required`, …) when it refused. */
  oauthError?: string;
  /** Its `error_description` (Microsoft's AADSTS code and text). */
  description?: string;
  /** For `timeout`: how long the wait was. */
  waitedMs?: number;
}

/** A redirect that is not ours (`final` false: keep waiting), or a refusal on the consent page (final). */
export class AuthorizationError extends Error {
  constructor(
    message: string,
    readonly final = false,
    readonly detail?: AuthorizationErrorDetail,
  ) {
    super(message);
  }
}

/**
 * The code from what the browser was sent to: the whole redirected URL (pasted by a person, or
 * the request line our loopback server got) or just its query. The state must match.
 */
export function codeFromRedirect(text: string, expectedState: string): string {
  const trimmed = text.trim();
  const query = trimmed.includes('?') ? trimmed.slice(trimmed.indexOf('?') + 1) : trimmed;
  const params = new URLSearchParams(query.split('#')[0]);
  const error = params.get('error');
  if (error) {
    const description = params.get('error_description');
    throw new AuthorizationError(`the authorization was refused: ${error}${description ? `: ${description}` : ''}`, true, {
      reason: 'refused',
      oauthError: error,
      ...(description ? { description } : {}),
    });
  }
  const code = params.get('code');
  if (!code) throw new AuthorizationError('that is not the redirected address: it has no code= in it (copy the whole address from the browser)', false, { reason: 'no-code' });
  if (params.get('state') !== expectedState) {
    throw new AuthorizationError('the state in that address does not match this run (an old tab?): open the URL printed above again', false, { reason: 'state' });
  }
  return code;
}

/** RFC 6749 §4.1.3 with the PKCE verifier. */
export async function exchangeCode(options: {
  tokenUrl: string;
  clientId: string;
  clientSecret?: string | undefined;
  code: string;
  redirectUri: string;
  verifier: string;
  scope?: string;
}): Promise<TokenResponse & { refresh_token: string }> {
  const answer = await requestToken(options.tokenUrl, {
    grant_type: 'authorization_code',
    code: options.code,
    redirect_uri: options.redirectUri,
    client_id: options.clientId,
    code_verifier: options.verifier,
    ...(options.clientSecret !== undefined ? { client_secret: options.clientSecret } : {}),
    ...(options.scope ? { scope: options.scope } : {}),
  });
  if (!answer.refresh_token) {
    throw new TokenError('the token endpoint gave an access token but no refresh token (for Google: revoke relaybox at myaccount.google.com/permissions and run this again)', 'refused');
  }
  return { ...answer, refresh_token: answer.refresh_token };
}
