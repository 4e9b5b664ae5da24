import { randomUUID } from 'node:crypto';
import { TokenError } from './errors.js';
import { requestToken, type TokenResponse } from './http.js';
import { signJwtRs256 } from './jwt.js';

/** A grant asks the token endpoint for a new access token; `now` is when (ms). */
export type Grant = (now: number) => Promise<TokenResponse>;

/**
 * RFC 6749 §6: a refresh token for an access token. The refresh token is looked up on every
 * refresh, so one stored by `relaybox oauth` while the service runs is used without a restart.
 * Microsoft answers with a new refresh token each time; `onRotated` keeps it.
 */
export function refreshTokenGrant(options: {
  tokenUrl: string;
  clientId: string;
  clientSecret?: string | undefined;
  /** Microsoft wants the scope again; Google takes the one granted. */
  scope?: string | undefined;
  refreshToken: () => Promise<string | null>;
  missing: () => TokenError;
  onRotated?: (refreshToken: string) => Promise<void>;
}): Grant {
  return async () => {
    const refreshToken = await options.refreshToken();
    if (!refreshToken) throw options.missing();
    const answer = await requestToken(options.tokenUrl, {
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: options.clientId,
      ...(options.clientSecret !== undefined ? { client_secret: options.clientSecret } : {}),
      ...(options.scope ? { scope: options.scope } : {}),
    });
    if (answer.refresh_token && answer.refresh_token !== refreshToken) await options.onRotated?.(answer.refresh_token);
    return answer;
  };
}

/** The longest assertion Google accepts is one hour (REFERENCE.md). */
const JWT_LIFETIME_S = 3600;

/**
 * RFC 7523: a Workspace service account with domain-wide delegation signs a JWT that says "I act
 * for `user`" and trades it for an access token. No person is involved, so nothing can expire but
 * the key itself.
 */
export function serviceAccountGrant(options: { tokenUrl: string; clientEmail: string; privateKey: string; user: string; scope: string }): Grant {
  return async (now) => {
    const iat = Math.floor(now / 1000);
    const assertion = signJwtRs256(
      { iss: options.clientEmail, sub: options.user, scope: options.scope, aud: options.tokenUrl, iat, exp: iat + JWT_LIFETIME_S },
      options.privateKey,
    );
    return requestToken(options.tokenUrl, { grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion });
  };
}

/** Microsoft accepts client assertions of at most 10 minutes' life. */
const CLIENT_ASSERTION_LIFETIME_S = 600;

/**
 * RFC 6749 §4.4 with an RFC 7523 client assertion instead of a secret: the app proves itself with
 * the private key of a certificate uploaded to its registration (`x5t` names which), so there is no
 * client secret to expire every two years.
 */
export function clientCertificateGrant(options: { tokenUrl: string; clientId: string; privateKey: string; thumbprint: string; scope: string }): Grant {
  return async (now) => {
    const iat = Math.floor(now / 1000);
    const assertion = signJwtRs256(
      { aud: options.tokenUrl, iss: options.clientId, sub: options.clientId, jti: randomUUID(), nbf: iat, iat, exp: iat + CLIENT_ASSERTION_LIFETIME_S },
      options.privateKey,
      { x5t: options.thumbprint },
    );
    return requestToken(options.tokenUrl, {
      grant_type: 'client_credentials',
      client_id: options.clientId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      scope: options.scope,
    });
  };
}

/** RFC 6749 §4.4: an application's own identity (Microsoft 365 app-only: SMTP.SendAsApp, or Graph's Mail.Send). */
export function clientCredentialsGrant(options: { tokenUrl: string; clientId: string; clientSecret: string; scope: string }): Grant {
  return async () =>
    requestToken(options.tokenUrl, {
      grant_type: 'client_credentials',
      client_id: options.clientId,
      client_secret: options.clientSecret,
      scope: options.scope,
    });
}
