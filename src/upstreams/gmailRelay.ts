import type { GmailRelayUpstreamConfig } from '../config/upstreams.js';
import type { UpstreamContext } from './types.js';
import { SmtpUpstream, type SmtpTarget } from './smtp.js';

export const GMAIL_RELAY_HOST = 'smtp-relay.gmail.com';
export const GMAIL_RELAY_PORT = 587;

/**
 * Google Workspace SMTP relay as an SMTP target: port 587, STARTTLS always required (Google refuses
 * plaintext with `530 5.7.0` and a relay must not leak mail in clear). host/port/tls may be
 * overridden for a regional endpoint, a proxy or a test double; security may not.
 */
export function gmailRelayTarget(config: GmailRelayUpstreamConfig): SmtpTarget {
  return {
    name: config.name,
    type: config.type,
    host: config.host ?? GMAIL_RELAY_HOST,
    port: config.port ?? GMAIL_RELAY_PORT,
    security: 'starttls',
    tls: config.tls,
    ...(config.auth ? { auth: config.auth } : {}),
  };
}

export function createGmailRelayUpstream(config: GmailRelayUpstreamConfig, context: UpstreamContext): SmtpUpstream {
  return new SmtpUpstream(gmailRelayTarget(config), context);
}
