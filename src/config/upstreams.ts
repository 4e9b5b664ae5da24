import { z } from 'zod';
import { secret } from './secret.js';

const tlsOptions = z.strictObject({
  verify: z.boolean().default(true),
  ca: z.string().default(''),
  min_version: z.enum(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']).optional(),
});

const hostOverrides = {
  host: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  tls: tlsOptions.prefault({}),
};

const smtpAuth = z.strictObject({ user: z.string().min(1), pass: secret });

const name = z.string().regex(/^[A-Za-z0-9_.-]+$/, 'use letters, digits, "-", "_" or "." only');

export const smtpUpstream = z.strictObject({
  name,
  type: z.literal('smtp'),
  ...hostOverrides,
  host: z.string().min(1),
  security: z.enum(['starttls', 'tls', 'none']).default('starttls'),
  auth: smtpAuth.optional(),
});

/** Google Workspace SMTP relay: smtp-relay.gmail.com:587, STARTTLS required, IP-allowlist auth. */
export const gmailRelayUpstream = z.strictObject({
  name,
  type: z.literal('gmail-relay'),
  ...hostOverrides,
  auth: smtpAuth.optional(),
});

export const fileUpstream = z.strictObject({
  name,
  type: z.literal('file'),
  dir: z.string().min(1),
});

export const upstream = z.discriminatedUnion('type', [smtpUpstream, gmailRelayUpstream, fileUpstream], {
  error: (issue) =>
    issue.code === 'invalid_union' ? 'type must be one of smtp, gmail-relay, file' : undefined,
});

export type UpstreamConfig = z.output<typeof upstream>;
export type SmtpUpstreamConfig = z.output<typeof smtpUpstream>;
export type GmailRelayUpstreamConfig = z.output<typeof gmailRelayUpstream>;
export type FileUpstreamConfig = z.output<typeof fileUpstream>;
