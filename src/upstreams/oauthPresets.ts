import type { GmailOauth2UpstreamConfig, Microsoft365Oauth2UpstreamConfig } from '../config/upstreams.js';
import { GOOGLE, MICROSOFT } from '../oauth/providers.js';
import { tokenSourceFor } from '../oauth/sources.js';
import { OAuthSmtpUpstream } from './oauthSmtp.js';
import type { UpstreamContext } from './types.js';

/**
 * Gmail (smtp.gmail.com) and Microsoft 365 (smtp.office365.com) with XOAUTH2: port 587 and
 * STARTTLS always — a bearer token must never cross the network in clear. host/port/tls may be
 * overridden (a regional endpoint, a proxy, a test double); security may not.
 */
type OAuthPresetConfig = GmailOauth2UpstreamConfig | Microsoft365Oauth2UpstreamConfig;

export function dataDirOf(context: UpstreamContext, name: string): string {
  // Tokens live in data_dir; an OAuth upstream without it would refresh on every start and could
  // not find the refresh token `relaybox oauth` stored.
  if (!context.dataDir) throw new Error(`upstream ${name}: OAuth upstreams need data_dir (internal: UpstreamContext.dataDir)`);
  return context.dataDir;
}

function createOAuthPreset(config: OAuthPresetConfig, defaults: { host: string; port: number }, context: UpstreamContext): OAuthSmtpUpstream {
  const logger = context.logger.child({ upstream: config.name });
  const tokens = tokenSourceFor(config, dataDirOf(context, config.name), { logger });
  const target = {
    name: config.name,
    type: config.type,
    host: config.host ?? defaults.host,
    port: config.port ?? defaults.port,
    security: 'starttls' as const,
    tls: config.tls,
    user: config.user,
  };
  return new OAuthSmtpUpstream(target, tokens, context);
}

export function createGmailOauth2Upstream(config: GmailOauth2UpstreamConfig, context: UpstreamContext): OAuthSmtpUpstream {
  return createOAuthPreset(config, { host: GOOGLE.smtpHost, port: GOOGLE.smtpPort }, context);
}

export function createMicrosoft365Upstream(config: Microsoft365Oauth2UpstreamConfig, context: UpstreamContext): OAuthSmtpUpstream {
  return createOAuthPreset(config, { host: MICROSOFT.smtpHost, port: MICROSOFT.smtpPort }, context);
}
