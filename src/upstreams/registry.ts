import type { UpstreamConfig } from '../config/upstreams.js';
import { FileUpstream } from './file.js';
import { createGmailAppPasswordUpstream } from './gmailAppPassword.js';
import { GmailApiUpstream } from './gmailApi.js';
import { createGmailRelayUpstream } from './gmailRelay.js';
import { GraphUpstream } from './graph.js';
import { createGmailOauth2Upstream, createMicrosoft365Upstream } from './oauthPresets.js';
import { createSmtpUpstream } from './smtp.js';
import type { Upstream, UpstreamContext } from './types.js';

export function createUpstream(config: UpstreamConfig, context: UpstreamContext): Upstream {
  switch (config.type) {
    case 'smtp':
      return createSmtpUpstream(config, context);
    case 'gmail-relay':
      return createGmailRelayUpstream(config, context);
    case 'gmail-oauth2':
      return createGmailOauth2Upstream(config, context);
    case 'microsoft365-oauth2':
      return createMicrosoft365Upstream(config, context);
    case 'microsoft365-graph':
      return new GraphUpstream(config, context);
    case 'gmail-api':
      return new GmailApiUpstream(config, context);
    case 'gmail-app-password':
      return createGmailAppPasswordUpstream(config, context);
    case 'file':
      return new FileUpstream(config, context);
  }
}

/** All or nothing: a bad entry (unreadable CA file) closes the ones already made, then throws. */
export function createUpstreams(list: readonly UpstreamConfig[], context: UpstreamContext): Upstream[] {
  const made: Upstream[] = [];
  try {
    for (const config of list) made.push(createUpstream(config, context));
  } catch (err) {
    for (const upstream of made) void upstream.close();
    throw err;
  }
  return made;
}
