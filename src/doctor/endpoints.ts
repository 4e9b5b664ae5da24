import type { UpstreamConfig } from '../config/upstreams.js';
import { GOOGLE, MICROSOFT } from '../oauth/providers.js';
import { gmailAppPasswordTarget } from '../upstreams/gmailAppPassword.js';
import { gmailRelayTarget } from '../upstreams/gmailRelay.js';

/** Where an SMTP-speaking upstream lives and how relaybox logs in there, as doctor probes it. */
export interface Endpoint {
  host: string;
  port: number;
  security: 'starttls' | 'tls' | 'none';
  tls: { verify: boolean; ca: string; min_version?: string | undefined };
  /** Password AUTH that doctor can try without sending mail. */
  auth?: { user: string; pass: string };
  /** XOAUTH2 as this mailbox: the token is only known at send time. */
  oauthUser?: string;
  /** The mailbox the upstream sends as, when the upstream fixes it (OAuth, app password). */
  mailbox?: string;
  /** SPF mechanisms that authorise this upstream's servers; any one of them will do. */
  spf: SpfExpectation | undefined;
}

export interface SpfExpectation {
  /** `Google`, `SendGrid`: for the report. */
  provider: string;
  /** `_spf.google.com`; alternatives are names the same provider also publishes. */
  includes: string[];
}

export const GOOGLE_SPF: SpfExpectation = { provider: 'Google', includes: ['_spf.google.com'] };
export const MICROSOFT_SPF: SpfExpectation = { provider: 'Microsoft 365', includes: ['spf.protection.outlook.com'] };

/** Relay providers by their SMTP host's domain (REFERENCE.md) and the SPF include each documents. */
const PROVIDER_SPF: { suffix: string; spf: SpfExpectation }[] = [
  { suffix: 'sendgrid.net', spf: { provider: 'SendGrid', includes: ['sendgrid.net'] } },
  { suffix: 'mailgun.org', spf: { provider: 'Mailgun', includes: ['mailgun.org'] } },
  { suffix: 'amazonaws.com', spf: { provider: 'Amazon SES', includes: ['amazonses.com'] } },
  { suffix: 'postmarkapp.com', spf: { provider: 'Postmark', includes: ['spf.mtasv.net'] } },
  { suffix: 'brevo.com', spf: { provider: 'Brevo', includes: ['spf.brevo.com', 'spf.sendinblue.com'] } },
  { suffix: 'sendinblue.com', spf: { provider: 'Brevo', includes: ['spf.brevo.com', 'spf.sendinblue.com'] } },
  { suffix: 'gmail.com', spf: GOOGLE_SPF },
  { suffix: 'google.com', spf: GOOGLE_SPF },
  { suffix: 'office365.com', spf: MICROSOFT_SPF },
  { suffix: 'outlook.com', spf: MICROSOFT_SPF },
];

const BY_PRESET: Record<string, string> = {
  sendgrid: 'sendgrid.net',
  mailgun: 'mailgun.org',
  'mailgun-eu': 'mailgun.org',
  ses: 'amazonaws.com',
  postmark: 'postmarkapp.com',
  brevo: 'brevo.com',
};

function spfByHost(host: string): SpfExpectation | undefined {
  const h = host.toLowerCase();
  return PROVIDER_SPF.find((p) => h === p.suffix || h.endsWith(`.${p.suffix}`))?.spf;
}

const DEFAULT_PORTS = { tls: 465, starttls: 587, none: 25 } as const;

/**
 * The probe target of an upstream, read from its configuration with the same presets the adapters
 * use; undefined for upstreams that do not speak SMTP (file).
 */
export function endpointOf(config: UpstreamConfig): Endpoint | undefined {
  switch (config.type) {
    case 'smtp': {
      const preset = config.provider ? PROVIDER_SPF.find((p) => p.suffix === BY_PRESET[config.provider!])?.spf : undefined;
      return {
        host: config.host,
        port: config.port ?? DEFAULT_PORTS[config.security],
        security: config.security,
        tls: config.tls,
        ...(config.auth ? { auth: { user: config.auth.user, pass: config.auth.pass } } : {}),
        spf: preset ?? spfByHost(config.host),
      };
    }
    case 'gmail-relay': {
      const t = gmailRelayTarget(config);
      return { host: t.host, port: t.port ?? 587, security: 'starttls', tls: t.tls, ...(t.auth ? { auth: t.auth } : {}), spf: GOOGLE_SPF };
    }
    case 'gmail-app-password': {
      const t = gmailAppPasswordTarget(config);
      return { host: t.host, port: t.port ?? 587, security: 'starttls', tls: t.tls, ...(t.auth ? { auth: t.auth } : {}), mailbox: config.user, spf: GOOGLE_SPF };
    }
    case 'gmail-oauth2':
      return { host: config.host ?? GOOGLE.smtpHost, port: config.port ?? GOOGLE.smtpPort, security: 'starttls', tls: config.tls, oauthUser: config.user, mailbox: config.user, spf: GOOGLE_SPF };
    case 'microsoft365-oauth2':
      return { host: config.host ?? MICROSOFT.smtpHost, port: config.port ?? MICROSOFT.smtpPort, security: 'starttls', tls: config.tls, oauthUser: config.user, mailbox: config.user, spf: MICROSOFT_SPF };
    default:
      return undefined;
  }
}
