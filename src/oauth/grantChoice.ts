import type { OAuthUpstreamConfig } from '../config/upstreams.js';

/**
 * Which grant an OAuth upstream will use and why, for check-config: a client_secret in a
 * microsoft365-oauth2 upstream silently makes it app-only unless `grant:` says otherwise.
 */
export function explainGrant(u: OAuthUpstreamConfig): string {
  const head = `${u.name}:`;
  if (u.type === 'microsoft365-graph') {
    return `${head} app-only (client credentials, ${u.certificate ? 'certificate' : 'client secret'}): microsoft365-graph always sends as the app`;
  }
  if (u.type === 'gmail-oauth2' || u.type === 'gmail-api') {
    if (u.service_account_key) return `${head} service account (domain-wide delegation) because service_account_key is set`;
    const flag = u.type === 'gmail-api' ? ' --gmail-api' : '';
    return `${head} refresh token of ${u.user} (sign in with: sudo relaybox oauth google${flag} --upstream ${u.name}) because client_id and client_secret are set, not service_account_key`;
  }
  const delegated = `delegated (refresh token of ${u.user}; sign in with: sudo relaybox oauth microsoft --device --upstream ${u.name})`;
  if (u.grant === 'client_credentials') {
    return u.grant_given
      ? `${head} app-only (client credentials) because grant: client_credentials is set`
      : `${head} app-only (client credentials) because client_secret is set and grant is not given; set grant: refresh_token to sign in as the user`;
  }
  if (u.grant_given) return `${head} ${delegated} because grant: refresh_token is set`;
  const why = u.client_secret === undefined ? 'no client_secret is set' : 'refresh_token is set';
  return `${head} ${delegated} because ${why} and grant is not given`;
}

export function isOAuthUpstream(u: { type: string }): u is OAuthUpstreamConfig {
  return u.type === 'gmail-oauth2' || u.type === 'gmail-api' || u.type === 'microsoft365-oauth2' || u.type === 'microsoft365-graph';
}
