import { X509Certificate, createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import { readableFile } from './fields.js';
import { secret } from './secret.js';
import { commonUpstreamKeys } from './upstreamKeys.js';

const tlsOptions = z.strictObject({
  verify: z.boolean().default(true),
  ca: z.union([z.literal(''), readableFile]).default(''),
  min_version: z.enum(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']).optional(),
});

const hostOverrides = {
  host: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  tls: tlsOptions.prefault({}),
};

/** A token endpoint receives secrets: https only, except on loopback (a test double, a local proxy). */
const endpointUrl = z.url({ protocol: /^https?$/ }).refine((text) => {
  const url = new URL(text);
  return url.protocol === 'https:' || ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}, 'expected an https:// URL (plain http only on 127.0.0.1 or localhost)');

/** Every OAuth type may point at a regional endpoint, a proxy or a test double. */
const oauthOverrides = { ...hostOverrides, token_url: endpointUrl.optional(), auth_url: endpointUrl.optional() };

const smtpAuth = z.strictObject({ user: z.string().min(1), pass: secret });

const name = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'use letters, digits, "-", "_" or "." only');
const mailbox = z.string().regex(/^[^@\s]+@[^@\s]+\.[^@\s]+$/, 'expected the mailbox address to send as, e.g. scanner@example.com');

/**
 * Relay providers that are plain SMTP with known names (REFERENCE.md): all take 587 with STARTTLS.
 * Amazon SES has one endpoint per region and its SMTP credentials are derived per region, so it
 * needs `region` (or an explicit `host`).
 */
export const PROVIDER_HOSTS = {
  sendgrid: 'smtp.sendgrid.net',
  mailgun: 'smtp.mailgun.org',
  'mailgun-eu': 'smtp.eu.mailgun.org',
  ses: (region: string) => `email-smtp.${region}.amazonaws.com`,
  postmark: 'smtp.postmarkapp.com',
  brevo: 'smtp-relay.brevo.com',
} as const;
export type Provider = keyof typeof PROVIDER_HOSTS;

/** What each provider wants as SMTP credentials — the usual first mistake with each of them. */
const PROVIDER_AUTH: Record<Provider, string> = {
  sendgrid: 'user "apikey", pass = an API key',
  mailgun: "the domain's SMTP credentials (Sending > Domain settings > SMTP credentials)",
  'mailgun-eu': "the domain's SMTP credentials (Sending > Domain settings > SMTP credentials)",
  ses: 'SMTP credentials made for that region (not IAM access keys)',
  postmark: 'the server API token as both user and pass',
  brevo: 'your login and an SMTP key (not the API key)',
};
const providers = Object.keys(PROVIDER_HOSTS) as [Provider, ...Provider[]];

export const smtpUpstream = z
  .strictObject({
    name,
    ...commonUpstreamKeys,
    type: z.literal('smtp'),
    ...hostOverrides,
    provider: z.enum(providers, { error: `expected one of ${providers.join(', ')}` }).optional(),
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'expected an AWS region like eu-west-1').optional(),
    security: z.enum(['starttls', 'tls', 'none']).optional(),
    auth: smtpAuth.optional(),
  })
  .superRefine((u, ctx) => {
    if (!u.host && !u.provider) ctx.addIssue({ code: 'custom', path: ['host'], message: 'is required' });
    if (u.provider === 'ses' && !u.host && !u.region) {
      ctx.addIssue({ code: 'custom', path: ['region'], message: 'Amazon SES needs the region its SMTP credentials belong to, e.g. region: eu-west-1 (or a host)' });
    }
    if (u.provider && !u.auth) ctx.addIssue({ code: 'custom', path: ['auth'], message: `${u.provider} needs auth: ${PROVIDER_AUTH[u.provider]}` });
    if (u.region && u.provider !== 'ses') ctx.addIssue({ code: 'custom', path: ['region'], message: 'only used with provider: ses' });
    if (u.provider && u.security === 'none') {
      ctx.addIssue({ code: 'custom', path: ['security'], message: `${u.provider} requires TLS: use starttls (or tls)` });
    }
    if (u.provider === 'postmark' && u.security === 'tls' && !u.port) {
      ctx.addIssue({ code: 'custom', path: ['security'], message: 'Postmark offers no implicit TLS on 465: use starttls' });
    }
  })
  .transform(({ region, ...u }) => {
    const preset = u.provider ? PROVIDER_HOSTS[u.provider] : undefined;
    const presetHost = typeof preset === 'function' ? preset(region ?? '') : preset;
    // Every provider takes 587 with STARTTLS; implicit TLS keeps the adapter's 465.
    const port = u.port ?? (u.provider && u.security !== 'tls' ? 587 : undefined);
    return { ...u, host: u.host ?? presetHost ?? '', security: u.security ?? ('starttls' as const), ...(port !== undefined ? { port } : {}) };
  });

/** Google Workspace SMTP relay: smtp-relay.gmail.com:587, STARTTLS required, IP-allowlist auth. */
export const gmailRelayUpstream = z.strictObject({
  name,
  ...commonUpstreamKeys,
  type: z.literal('gmail-relay'),
  ...hostOverrides,
  auth: smtpAuth.optional(),
});

/** The JSON key Google gives for a service account; checked here so a bad file is a config error. */
const serviceAccountKey = secret.transform((text, ctx) => {
  let key: { client_email?: unknown; private_key?: unknown; token_uri?: unknown } = {};
  try {
    key = JSON.parse(text) as typeof key;
  } catch {
    ctx.addIssue({ code: 'custom', message: 'not a JSON service account key (Google Cloud console > IAM > Service accounts > Keys > JSON)' });
    return { client_email: '', private_key: '' };
  }
  if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string') {
    ctx.addIssue({ code: 'custom', message: 'the service account key has no client_email or private_key' });
    return { client_email: '', private_key: '' };
  }
  try {
    createPrivateKey(key.private_key);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'the service account key has a private_key that is not a PEM private key' });
  }
  return { client_email: key.client_email, private_key: key.private_key, ...(typeof key.token_uri === 'string' ? { token_uri: key.token_uri } : {}) };
});

export const gmailOauth2Upstream = z
  .strictObject({
    name,
    ...commonUpstreamKeys,
    type: z.literal('gmail-oauth2'),
    ...oauthOverrides,
    user: mailbox,
    client_id: z.string().min(1).optional(),
    client_secret: secret.optional(),
    refresh_token: secret.optional(),
    service_account_key: serviceAccountKey.optional(),
  })
  .superRefine(checkGoogleCredentials);

/** A Google upstream has a service account or an OAuth client, not both. */
function checkGoogleCredentials(
  u: { client_id?: string | undefined; client_secret?: string | undefined; refresh_token?: string | undefined; service_account_key?: unknown },
  ctx: z.RefinementCtx,
): void {
  if (u.service_account_key) {
    for (const key of ['client_id', 'client_secret', 'refresh_token'] as const) {
      if (u[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'not used with service_account_key: choose the service account or an OAuth client' });
    }
    return;
  }
  if (!u.client_id) ctx.addIssue({ code: 'custom', path: ['client_id'], message: 'is required (the Desktop-type OAuth client), or service_account_key for a Workspace service account' });
  if (u.client_secret === undefined) ctx.addIssue({ code: 'custom', path: ['client_secret'], message: "is required: Google's token endpoint wants the Desktop client's secret too" });
}

const MS_COMMON_TENANTS = new Set(['common', 'organizations', 'consumers']);
const tenantId = z.string().regex(/^[A-Za-z0-9.-]+$/, 'expected the directory (tenant) ID or a domain like contoso.onmicrosoft.com');

/**
 * Microsoft 365: app-only (client credentials) when a client_secret is given and no refresh token;
 * delegated (a person's refresh token, `relaybox oauth microsoft`) otherwise. `grant` overrides that
 * guess, e.g. for a delegated confidential client that has a secret.
 */
export const microsoft365Oauth2Upstream = z
  .strictObject({
    name,
    ...commonUpstreamKeys,
    type: z.literal('microsoft365-oauth2'),
    ...oauthOverrides,
    user: mailbox,
    tenant_id: tenantId.optional(),
    client_id: z.string().min(1),
    client_secret: secret.optional(),
    refresh_token: secret.optional(),
    grant: z.enum(['client_credentials', 'refresh_token']).optional(),
  })
  // grant_given: whether the file said it, so check-config can say why the other grant was chosen.
  .transform((u) => ({ ...u, grant: u.grant ?? (u.client_secret !== undefined && u.refresh_token === undefined ? 'client_credentials' : 'refresh_token'), grant_given: u.grant !== undefined }))
  .superRefine((u, ctx) => {
    if (u.grant !== 'client_credentials') return;
    if (u.client_secret === undefined) ctx.addIssue({ code: 'custom', path: ['client_secret'], message: 'is required for app-only access (client credentials)' });
    if (u.refresh_token !== undefined) ctx.addIssue({ code: 'custom', path: ['refresh_token'], message: 'not used with grant: client_credentials' });
    if (!u.tenant_id || MS_COMMON_TENANTS.has(u.tenant_id.toLowerCase())) {
      ctx.addIssue({ code: 'custom', path: ['tenant_id'], message: 'app-only access needs your directory (tenant) ID, not common/organizations' });
    }
  });

/** Google app passwords are shown as four groups of four letters; spaces are presentation only. */
const appPassword = secret.transform((text, ctx) => {
  const stripped = text.replace(/\s+/g, '');
  if (!/^[a-zA-Z]{16}$/.test(stripped)) {
    // The length and nothing else: the value is a secret and must not reach an error message.
    ctx.addIssue({ code: 'custom', message: `expected the 16-letter app password Google shows (spaces are fine), got ${stripped.length} characters${/[^a-zA-Z]/.test(stripped) ? ' with non-letters' : ''}` });
  }
  return stripped;
});

export const gmailAppPasswordUpstream = z.strictObject({
  name,
  ...commonUpstreamKeys,
  type: z.literal('gmail-app-password'),
  ...hostOverrides,
  user: mailbox,
  password: appPassword,
});

export const fileUpstream = z.strictObject({
  name,
  ...commonUpstreamKeys,
  type: z.literal('file'),
  dir: z.string().min(1),
});

/** An HTTPS API's base URL (a national cloud, a proxy, a test double): https only, it receives bearer tokens. */
const apiUrl = z.url({ protocol: /^https$/, error: 'expected an https:// URL' }).transform((text) => text.replace(/\/+$/, ''));

const PEM_KEY = /-----BEGIN (?:RSA |EC )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC )?PRIVATE KEY-----/;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

/**
 * An Entra app's certificate credential: one PEM file with the private key and the certificate
 * uploaded to the app registration (`cat app.key app.crt > app.pem`). The certificate's SHA-1
 * thumbprint names the key in the client assertion (`x5t`).
 */
const certificateCredential = secret.transform((text, ctx) => {
  const key = PEM_KEY.exec(text)?.[0];
  const cert = PEM_CERT.exec(text)?.[0];
  if (!key || !cert) {
    ctx.addIssue({ code: 'custom', message: `expected one PEM file with the private key and the certificate (cat app.key app.crt > app.pem); it has no ${key ? 'CERTIFICATE' : 'PRIVATE KEY'} block` });
    return { private_key: '', thumbprint: '' };
  }
  try {
    createPrivateKey(key);
    const thumbprint = Buffer.from(new X509Certificate(cert).fingerprint.replaceAll(':', ''), 'hex').toString('base64url');
    return { private_key: key, thumbprint };
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `cannot read the key or certificate: ${(err as Error).message}` });
    return { private_key: '', thumbprint: '' };
  }
});

/** Microsoft Graph sendMail with app-only access (Mail.Send): works where SMTP AUTH is switched off. */
export const microsoft365GraphUpstream = z
  .strictObject({
    name,
    ...commonUpstreamKeys,
    type: z.literal('microsoft365-graph'),
    user: mailbox,
    tenant_id: tenantId,
    client_id: z.string().min(1),
    client_secret: secret.optional(),
    certificate: certificateCredential.optional(),
    save_to_sent_items: z.boolean().default(false),
    graph_url: apiUrl.default('https://graph.microsoft.com'),
    token_url: endpointUrl.optional(),
    tls: tlsOptions.prefault({}),
  })
  .superRefine((u, ctx) => {
    if (MS_COMMON_TENANTS.has(u.tenant_id.toLowerCase())) ctx.addIssue({ code: 'custom', path: ['tenant_id'], message: 'app-only access needs your directory (tenant) ID, not common/organizations' });
    if (u.client_secret === undefined && !u.certificate) ctx.addIssue({ code: 'custom', path: ['client_secret'], message: "is required, or certificate: { file: app.pem } (the app's credential)" });
    if (u.client_secret !== undefined && u.certificate) ctx.addIssue({ code: 'custom', path: ['certificate'], message: 'not used with client_secret: give the app one credential' });
  });

/** The Gmail API's users.messages.send with the narrow gmail.send scope. */
export const gmailApiUpstream = z
  .strictObject({
    name,
    ...commonUpstreamKeys,
    type: z.literal('gmail-api'),
    user: mailbox,
    client_id: z.string().min(1).optional(),
    client_secret: secret.optional(),
    refresh_token: secret.optional(),
    service_account_key: serviceAccountKey.optional(),
    api_url: apiUrl.default('https://gmail.googleapis.com'),
    token_url: endpointUrl.optional(),
    auth_url: endpointUrl.optional(),
    tls: tlsOptions.prefault({}),
  })
  .superRefine(checkGoogleCredentials);

const TYPES = ['smtp', 'gmail-relay', 'gmail-oauth2', 'microsoft365-oauth2', 'microsoft365-graph', 'gmail-api', 'gmail-app-password', 'file'];

export const upstream = z.discriminatedUnion(
  'type',
  [smtpUpstream, gmailRelayUpstream, gmailOauth2Upstream, microsoft365Oauth2Upstream, microsoft365GraphUpstream, gmailApiUpstream, gmailAppPasswordUpstream, fileUpstream],
  { error: (issue) => (issue.code === 'invalid_union' ? `type must be one of ${TYPES.join(', ')}` : undefined) },
);

export type UpstreamConfig = z.output<typeof upstream>;
export type SmtpUpstreamConfig = z.output<typeof smtpUpstream>;
export type GmailRelayUpstreamConfig = z.output<typeof gmailRelayUpstream>;
export type GmailOauth2UpstreamConfig = z.output<typeof gmailOauth2Upstream>;
export type Microsoft365Oauth2UpstreamConfig = z.output<typeof microsoft365Oauth2Upstream>;
export type GmailAppPasswordUpstreamConfig = z.output<typeof gmailAppPasswordUpstream>;
export type FileUpstreamConfig = z.output<typeof fileUpstream>;
export type Microsoft365GraphUpstreamConfig = z.output<typeof microsoft365GraphUpstream>;
export type GmailApiUpstreamConfig = z.output<typeof gmailApiUpstream>;
/** The upstream types that sign in with OAuth 2.0 and so own token files in data_dir/oauth. */
export type OAuthUpstreamConfig = GmailOauth2UpstreamConfig | Microsoft365Oauth2UpstreamConfig | Microsoft365GraphUpstreamConfig | GmailApiUpstreamConfig;
/** The OAuth upstreams a person may sign in for (`relaybox oauth`): they can use a refresh token. */
export type RefreshTokenUpstreamConfig = GmailOauth2UpstreamConfig | Microsoft365Oauth2UpstreamConfig | GmailApiUpstreamConfig;
/** The upstream types that speak an HTTPS API instead of SMTP. */
export type ApiUpstreamConfig = Microsoft365GraphUpstreamConfig | GmailApiUpstreamConfig;
