import type { GmailApiUpstreamConfig, GmailOauth2UpstreamConfig, Microsoft365GraphUpstreamConfig, Microsoft365Oauth2UpstreamConfig, OAuthUpstreamConfig } from '../config/upstreams.js';

/** Google's OAuth endpoints and Gmail's SMTP submission host (REFERENCE.md). */
export const GOOGLE = {
  tokenUrl: 'https://oauth2.googleapis.com/token',
  authUrl: 'https://accounts.google.com/o/oauth2/v2/auth',
  scope: 'https://mail.google.com/',
  /** The Gmail API's narrow scope: send only, no reading (gmail-api). */
  sendScope: 'https://www.googleapis.com/auth/gmail.send',
  smtpHost: 'smtp.gmail.com',
  smtpPort: 587,
} as const;

/** Microsoft identity platform (v2.0) and Exchange Online's SMTP submission host. */
export const MICROSOFT = {
  login: 'https://login.microsoftonline.com',
  /** App-only: the `.default` scope of Exchange Online, granted as SMTP.SendAsApp. */
  appScope: 'https://outlook.office365.com/.default',
  /** App-only for Microsoft Graph: the application permissions granted (Mail.Send, Mail.ReadWrite). */
  graphScope: 'https://graph.microsoft.com/.default',
  /** Delegated: SMTP.Send on behalf of the signed-in user; offline_access yields a refresh token. */
  delegatedScope: 'https://outlook.office.com/SMTP.Send offline_access',
  /** Work and school accounts of any tenant, for a delegated sign-in without a tenant_id. */
  defaultTenant: 'organizations',
  smtpHost: 'smtp.office365.com',
  smtpPort: 587,
} as const;

export type OAuthProvider = 'google' | 'microsoft';
export type OAuthGrant = 'refresh_token' | 'service_account' | 'client_credentials';

/** Where to ask, and for what, for one configured upstream. */
export interface OAuthEndpoints {
  provider: OAuthProvider;
  grant: OAuthGrant;
  tokenUrl: string;
  authUrl: string;
  /** RFC 8628 device authorization endpoint (Microsoft only: Google's device flow refuses Gmail scopes). */
  deviceUrl?: string;
  scope: string;
}

export function providerOf(config: OAuthUpstreamConfig): OAuthProvider {
  return config.type === 'gmail-oauth2' || config.type === 'gmail-api' ? 'google' : 'microsoft';
}

export function googleEndpoints(config: GmailOauth2UpstreamConfig | GmailApiUpstreamConfig): OAuthEndpoints {
  const grant = config.service_account_key ? 'service_account' : 'refresh_token';
  // The key file names Google's token endpoint; an explicit token_url (a proxy, a test double) wins.
  const tokenUrl = config.token_url ?? config.service_account_key?.token_uri ?? GOOGLE.tokenUrl;
  const scope = config.type === 'gmail-api' ? GOOGLE.sendScope : GOOGLE.scope;
  return { provider: 'google', grant, tokenUrl, authUrl: config.auth_url ?? GOOGLE.authUrl, scope };
}

/** Graph is app-only: client credentials with a secret or a certificate, for the Graph API's permissions. */
export function graphEndpoints(config: Microsoft365GraphUpstreamConfig): OAuthEndpoints {
  const base = `${MICROSOFT.login}/${config.tenant_id}/oauth2/v2.0`;
  return { provider: 'microsoft', grant: 'client_credentials', tokenUrl: config.token_url ?? `${base}/token`, authUrl: `${base}/authorize`, scope: MICROSOFT.graphScope };
}

export function microsoftEndpoints(config: Microsoft365Oauth2UpstreamConfig): OAuthEndpoints {
  const base = `${MICROSOFT.login}/${config.tenant_id ?? MICROSOFT.defaultTenant}/oauth2/v2.0`;
  const tokenUrl = config.token_url ?? `${base}/token`;
  const authUrl = config.auth_url ?? `${base}/authorize`;
  // The three endpoints are siblings; derive the device endpoint from whichever was overridden.
  const deviceUrl = config.auth_url
    ? config.auth_url.replace(/\/authorize\/?$/, '/devicecode')
    : config.token_url
      ? config.token_url.replace(/\/token\/?$/, '/devicecode')
      : `${base}/devicecode`;
  const appOnly = config.grant === 'client_credentials';
  return {
    provider: 'microsoft',
    grant: appOnly ? 'client_credentials' : 'refresh_token',
    tokenUrl,
    authUrl,
    deviceUrl,
    scope: appOnly ? MICROSOFT.appScope : MICROSOFT.delegatedScope,
  };
}

export function endpointsFor(config: OAuthUpstreamConfig): OAuthEndpoints {
  if (config.type === 'gmail-oauth2' || config.type === 'gmail-api') return googleEndpoints(config);
  return config.type === 'microsoft365-graph' ? graphEndpoints(config) : microsoftEndpoints(config);
}

/** The command that gets a new refresh token for this upstream. */
export function authorizeCommand(provider: OAuthProvider, upstream: string): string {
  return `relaybox oauth ${provider} --upstream ${upstream}`;
}
