import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { OAuthUpstreamConfig } from '../config/upstreams.js';
import { TokenError } from './errors.js';
import { refreshTokenPath, tokenCachePath } from './files.js';
import { clientCertificateGrant, clientCredentialsGrant, refreshTokenGrant, serviceAccountGrant, type Grant } from './grants.js';
import { explainRefusal, missingRefreshToken, type HintContext } from './hints.js';
import { authorizeCommand, endpointsFor } from './providers.js';
import { currentRefreshToken, refreshTokenOrigin, storeRefreshToken } from './refreshStore.js';
import { CachingTokenSource, type TokenSource } from './tokenSource.js';

export interface UpstreamTokenSource {
  source: TokenSource;
  hints: HintContext;
  /** `refresh token stored by relaybox oauth google` — for check-config; never the secret. */
  describe(): string;
}

/**
 * The token source for one OAuth upstream: picks the grant its config implies, caches tokens in
 * `<data_dir>/oauth/<name>.token.json`, and words every refusal so a person knows what to do.
 */
export function tokenSourceFor(config: OAuthUpstreamConfig, dataDir: string, options: { logger?: Logger; now?: () => number } = {}): UpstreamTokenSource {
  const endpoints = endpointsFor(config);
  const key = config.type === 'gmail-oauth2' || config.type === 'gmail-api' ? config.service_account_key : undefined;
  const certificate = config.type === 'microsoft365-graph' ? config.certificate : undefined;
  const hints: HintContext = {
    upstream: config.name,
    user: config.user,
    endpoints,
    ...(key ? { serviceAccount: key.client_email } : {}),
    ...(certificate ? { credential: 'certificate' as const } : {}),
  };
  let grant: Grant;
  let describe: () => string;

  if (key) {
    grant = serviceAccountGrant({ tokenUrl: endpoints.tokenUrl, clientEmail: key.client_email, privateKey: key.private_key, user: config.user, scope: endpoints.scope });
    describe = () => `service account ${key.client_email} acting for ${config.user}`;
  } else if (certificate) {
    grant = clientCertificateGrant({ tokenUrl: endpoints.tokenUrl, clientId: config.client_id ?? '', privateKey: certificate.private_key, thumbprint: certificate.thumbprint, scope: endpoints.scope });
    describe = () => `app-only (client credentials, certificate) for ${config.user}`;
  } else if (endpoints.grant === 'client_credentials') {
    grant = clientCredentialsGrant({ tokenUrl: endpoints.tokenUrl, clientId: config.client_id ?? '', clientSecret: config.client_secret ?? '', scope: endpoints.scope });
    describe = () => `app-only (client credentials) for ${config.user}`;
  } else {
    const configured = 'refresh_token' in config ? config.refresh_token : undefined;
    grant = refreshTokenGrant({
      tokenUrl: endpoints.tokenUrl,
      clientId: config.client_id ?? '',
      clientSecret: config.client_secret,
      // Google keeps the granted scope; Microsoft's v2.0 endpoint asks for it again.
      scope: endpoints.provider === 'microsoft' ? endpoints.scope : undefined,
      refreshToken: () => currentRefreshToken(dataDir, config.name, configured),
      missing: () => missingRefreshToken(hints),
      onRotated: async (refreshToken) => {
        await storeRefreshToken(dataDir, config.name, { refreshToken, clientId: config.client_id ?? '', scope: endpoints.scope, configured }).catch((err: unknown) =>
          options.logger?.warn({ err: (err as Error).message }, 'cannot keep the rotated refresh token; the current one still works for now'),
        );
      },
    });
    describe = () => {
      const origin = refreshTokenOrigin(dataDir, config.name, configured);
      if (origin === 'stored') return `refresh token stored in ${refreshTokenPath(dataDir, config.name)}`;
      if (origin === 'configured') return 'refresh token from the configuration';
      return `NO refresh token yet — run: ${authorizeCommand(endpoints.provider, config.name)}`;
    };
  }

  const explained: Grant = async (now) => {
    try {
      return await grant(now);
    } catch (err) {
      throw err instanceof TokenError ? explainRefusal(err, hints) : err;
    }
  };
  const source = new CachingTokenSource({
    fetch: explained,
    cacheFile: tokenCachePath(dataDir, config.name),
    identity: identityOf([endpoints.grant, endpoints.tokenUrl, config.client_id ?? key?.client_email ?? '', config.user, endpoints.scope]),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  return { source, hints, describe };
}

function identityOf(parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 32);
}
