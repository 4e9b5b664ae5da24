import type { UpstreamConfig } from '../config/upstreams.js';

/** Whose servers an upstream talks to: the same reply means different fixes at each. */
export type Provider = 'microsoft365' | 'google-relay' | 'gmail' | 'other';

/** How the upstream logs in: the fix for a refused login depends on it. */
export type Login = 'password' | 'oauth' | 'none';

/** What a hint may name: the upstream, its provider and login, and the user it sends as. */
export interface HintTarget {
  name: string;
  provider: Provider;
  login: Login;
  host: string;
  /** The mailbox the upstream logs in as, or `the upstream's user` when it has none. */
  user: string;
  /** relaybox's EHLO name (`hostname`). */
  hostname: string;
}

const MICROSOFT_HOSTS = /(^|\.)(office365\.com|outlook\.com|protection\.outlook\.com)$/i;
const GOOGLE_RELAY_HOSTS = /^(smtp-relay|aspmx)\.(gmail|googlemail)\.com$/i;
const GMAIL_HOSTS = /^smtp\.(gmail|googlemail)\.com$/i;

/**
 * An upstream as hints see it. Presets are known by type; a plain `smtp` upstream by its host, so
 * `host: smtp.office365.com` gets Microsoft's hints too.
 */
export function hintTarget(config: UpstreamConfig, hostname: string): HintTarget {
  const base = { name: config.name, hostname };
  switch (config.type) {
    case 'microsoft365-oauth2':
      return { ...base, provider: 'microsoft365', login: 'oauth', host: config.host ?? 'smtp.office365.com', user: config.user };
    case 'gmail-oauth2':
      return { ...base, provider: 'gmail', login: 'oauth', host: config.host ?? 'smtp.gmail.com', user: config.user };
    case 'gmail-app-password':
      return { ...base, provider: 'gmail', login: 'password', host: config.host ?? 'smtp.gmail.com', user: config.user };
    case 'gmail-relay':
      return { ...base, provider: 'google-relay', login: config.auth ? 'password' : 'none', host: config.host ?? 'smtp-relay.gmail.com', user: config.auth?.user ?? "the upstream's user" };
    case 'smtp':
      return { ...base, provider: providerOfHost(config.host), login: config.auth ? 'password' : 'none', host: config.host, user: config.auth?.user ?? "the upstream's user" };
    case 'microsoft365-graph':
      return { ...base, provider: 'microsoft365', login: 'oauth', host: new URL(config.graph_url).host, user: config.user };
    case 'gmail-api':
      return { ...base, provider: 'gmail', login: 'oauth', host: new URL(config.api_url).host, user: config.user };
    case 'file':
      return { ...base, provider: 'other', login: 'none', host: config.dir, user: "the upstream's user" };
  }
}

function providerOfHost(host: string): Provider {
  if (MICROSOFT_HOSTS.test(host)) return 'microsoft365';
  if (GOOGLE_RELAY_HOSTS.test(host)) return 'google-relay';
  if (GMAIL_HOSTS.test(host)) return 'gmail';
  return 'other';
}
