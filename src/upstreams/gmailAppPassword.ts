import type { GmailAppPasswordUpstreamConfig } from '../config/upstreams.js';
import { GOOGLE } from '../oauth/providers.js';
import type { UpstreamContext } from './types.js';
import { SmtpUpstream, type SmtpTarget } from './smtp.js';

/**
 * Gmail with an app password (needs 2-Step Verification; often disabled in Workspace): plain
 * AUTH on smtp.gmail.com:587 after STARTTLS. The config already stripped the spaces Google shows.
 */
export function gmailAppPasswordTarget(config: GmailAppPasswordUpstreamConfig): SmtpTarget {
  return {
    name: config.name,
    type: config.type,
    host: config.host ?? GOOGLE.smtpHost,
    port: config.port ?? GOOGLE.smtpPort,
    security: 'starttls',
    tls: config.tls,
    auth: { user: config.user, pass: config.password },
  };
}

export function createGmailAppPasswordUpstream(config: GmailAppPasswordUpstreamConfig, context: UpstreamContext): SmtpUpstream {
  return new SmtpUpstream(gmailAppPasswordTarget(config), context);
}
