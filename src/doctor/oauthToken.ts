import type { OAuthUpstreamConfig } from '../config/upstreams.js';
import { TokenError, reasonOf } from '../oauth/errors.js';
import { endpointsFor, type OAuthEndpoints } from '../oauth/providers.js';
import { refreshTokenOrigin } from '../oauth/refreshStore.js';
import { tokenSourceFor } from '../oauth/sources.js';
import { withTimeout } from './dns.js';
import { fail, ok, type Finding } from './report.js';

/** The command that signs in again for this upstream, as an admin types it on a packaged box. */
export function signInCommand(u: OAuthUpstreamConfig, endpoints: OAuthEndpoints = endpointsFor(u)): string {
  if (endpoints.provider === 'microsoft') return `sudo relaybox oauth microsoft --device --upstream ${u.name}`;
  return `sudo relaybox oauth google${u.type === 'gmail-api' ? ' --gmail-api' : ''} --upstream ${u.name}`;
}

/** Why a refresh token stops working, by provider (REFERENCE.md). */
function invalidGrantCauses(endpoints: OAuthEndpoints, user: string): string {
  return endpoints.provider === 'google'
    ? `a password change of ${user} revokes its Gmail tokens; an app whose publishing status is "Testing" ends them after 7 days; ${user} or an admin removed the app's access`
    : `Microsoft ends refresh tokens unused for 90 days; a password reset or "Revoke sessions" ends them; an admin removed the app's consent`;
}

/**
 * An OAuth upstream's token, checked the way serve will use it (no mail is sent): a refresh-token
 * upstream with nobody signed in is a FAIL, not "checked at send time"; otherwise one token is
 * asked for (a fresh one: the cache is dropped first), and a refusal is named with its causes.
 */
export async function checkOAuthToken(u: OAuthUpstreamConfig, options: { dataDir: string; timeoutMs: number; network: boolean }): Promise<Finding[]> {
  const topic = `upstream ${u.name}`;
  const endpoints = endpointsFor(u);
  if (endpoints.grant === 'refresh_token') {
    const configured = 'refresh_token' in u ? u.refresh_token : undefined;
    if (refreshTokenOrigin(options.dataDir, u.name, configured) === 'none') {
      return [fail(topic, `token: no refresh token yet: nobody has signed in as ${u.user} for this upstream`, signInCommand(u, endpoints))];
    }
  }
  if (!options.network) return [];
  const { source, describe } = tokenSourceFor(u, options.dataDir);
  try {
    source.invalidate(); // a cached access token would prove nothing about the refresh token
    await withTimeout(source.getToken(), options.timeoutMs * 3, `a token for ${u.name}`);
    return [ok(topic, `token: ${describe()}: the token endpoint gave a fresh access token (no mail sent)`)];
  } catch (err) {
    const code = err instanceof TokenError ? err.oauthError : undefined;
    if (endpoints.grant === 'refresh_token' && code === 'invalid_grant') {
      return [fail(topic, `token: invalid_grant: the refresh token was revoked or expired. Causes: ${invalidGrantCauses(endpoints, u.user)}`, `sign in again: ${signInCommand(u, endpoints)}`)];
    }
    return [fail(topic, `token: ${reasonOf(err)}`, endpoints.grant === 'refresh_token' && code ? `if the sign-in is at fault: ${signInCommand(u, endpoints)}` : undefined)];
  }
}
