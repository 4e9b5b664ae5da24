import { createServer } from 'node:net';
import type { RefreshTokenUpstreamConfig, UpstreamConfig } from '../config/upstreams.js';
import { authorizationUrl, newState, pkcePair } from './authorize.js';
import { removeFile, tokenCachePath } from './files.js';
import { endpointsFor, type OAuthEndpoints, type OAuthProvider } from './providers.js';
import { storeRefreshToken } from './refreshStore.js';

/**
 * The pieces of a person's sign-in that the CLI (`relaybox oauth`) and the console's Reconnect
 * share: which upstreams take one, the authorization request, and storing what it yields.
 */

/** How a person signs in for an upstream from a screen with no terminal: a device code (Microsoft) or a pasted address (Google). */
export type SignInFlow = 'device' | 'paste';

export interface SignInTarget {
  upstream: RefreshTokenUpstreamConfig;
  endpoints: OAuthEndpoints;
  provider: OAuthProvider;
  flow: SignInFlow;
}

/** The sign-in an upstream takes; null for the ones no person signs in for (service account, app-only). */
export function signInTarget(config: UpstreamConfig): SignInTarget | null {
  if (config.type !== 'gmail-oauth2' && config.type !== 'gmail-api' && config.type !== 'microsoft365-oauth2') return null;
  const endpoints = endpointsFor(config);
  if (endpoints.grant !== 'refresh_token') return null;
  // Google refuses Gmail scopes in the device flow (REFERENCE.md); Microsoft's works for any public client.
  const flow: SignInFlow = endpoints.provider === 'microsoft' && endpoints.deviceUrl ? 'device' : 'paste';
  return { upstream: config, endpoints, provider: endpoints.provider, flow };
}

export interface AuthorizationStart {
  url: string;
  /** Stays on the box: the redirect must bring it back. */
  state: string;
  /** Stays on the box: only its hash travels (PKCE). */
  verifier: string;
}

/** The consent page's address for an authorization-code sign-in with PKCE, returning to `redirectUri`. */
export function startAuthorization(target: Pick<SignInTarget, 'upstream' | 'endpoints' | 'provider'>, redirectUri: string, state = newState()): AuthorizationStart {
  const { verifier, challenge } = pkcePair();
  const url = authorizationUrl({
    authUrl: target.endpoints.authUrl,
    clientId: target.upstream.client_id ?? '',
    redirectUri,
    scope: target.endpoints.scope,
    state,
    challenge,
    loginHint: target.upstream.user,
    // Google hands out a refresh token only for offline access, and again only with a fresh consent.
    extra: target.provider === 'google' ? { access_type: 'offline', prompt: 'consent' } : { response_mode: 'query' },
  });
  return { url, state, verifier };
}

/**
 * A loopback address nothing listens on, for a redirect a person copies from the browser's
 * address bar ("This site can't be reached"): a port that was free a moment ago, never a fixed
 * one another program may own (it would receive the code).
 */
export async function unusedLoopbackRedirect(): Promise<string> {
  const server = createServer();
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/`;
}

/**
 * Stores a refresh token as `relaybox oauth` does (0600, in data_dir/oauth) and drops the cached
 * access token, which may belong to a revoked grant. The running service reads the stored token
 * at its next refresh. Returns the file's path.
 */
export async function storeSignIn(options: { dataDir: string; target: Pick<SignInTarget, 'upstream' | 'endpoints'>; refreshToken: string }): Promise<string> {
  const { upstream, endpoints } = options.target;
  const path = await storeRefreshToken(options.dataDir, upstream.name, {
    refreshToken: options.refreshToken,
    clientId: upstream.client_id ?? '',
    scope: endpoints.scope,
    configured: upstream.refresh_token,
  });
  await removeFile(tokenCachePath(options.dataDir, upstream.name));
  return path;
}
