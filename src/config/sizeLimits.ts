/** Upstream size limits at run time; no schema code here, the delivery thread loads this. */
import type { Provider, UpstreamConfig } from './upstreams.js';

const MB = 1024 * 1024;

/** An upstream's size limit as the device is told it: bytes (0 = none) and the name a person knows. */
export interface SizeLimit {
  bytes: number;
  /** "Gmail", "Microsoft 365", "SendGrid" — or the upstream's own name where no provider is known. */
  label: string;
}

/** The providers' published limits (README "Message size limits", checked 2026-11-27). */
const PROVIDER_LIMITS: Record<Provider, SizeLimit> = {
  sendgrid: { bytes: 30 * MB, label: 'SendGrid' },
  mailgun: { bytes: 25 * MB, label: 'Mailgun' },
  'mailgun-eu': { bytes: 25 * MB, label: 'Mailgun' },
  ses: { bytes: 40 * MB, label: 'Amazon SES' },
  postmark: { bytes: 10 * MB, label: 'Postmark' },
  brevo: { bytes: 20 * MB, label: 'Brevo' },
};

const GMAIL = { bytes: 25 * MB, label: 'Gmail' };
const MICROSOFT_365 = { bytes: 35 * MB, label: 'Microsoft 365' };

/** What the upstream's type or provider allows when `max_message_bytes` is not given. */
export function presetLimit(u: UpstreamConfig): SizeLimit {
  switch (u.type) {
    case 'gmail-relay':
    case 'gmail-oauth2':
    case 'gmail-app-password':
      return GMAIL;
    case 'gmail-api':
      return { ...GMAIL, bytes: 35 * MB };
    case 'microsoft365-oauth2':
    case 'microsoft365-graph':
      // 35 MB is Exchange Online's default per mailbox; a tenant may raise it up to 150 MB.
      return MICROSOFT_365;
    case 'smtp':
      return u.provider ? PROVIDER_LIMITS[u.provider] : { bytes: 0, label: u.name };
    case 'file':
      return { bytes: 0, label: u.name };
  }
}

/** The upstream's limit: its own `max_message_bytes`, else its preset's. */
export function sizeLimitOf(u: UpstreamConfig): SizeLimit {
  const preset = presetLimit(u);
  return u.max_message_bytes === undefined ? preset : { ...preset, bytes: u.max_message_bytes };
}

/** Every upstream's limit, by name. */
export function sizeLimits(upstreams: readonly UpstreamConfig[]): Map<string, SizeLimit> {
  return new Map(upstreams.map((u) => [u.name, sizeLimitOf(u)]));
}

export function fits(limit: SizeLimit, size: number): boolean {
  return limit.bytes === 0 || size <= limit.bytes;
}

/** Of several upstreams, the one that takes the largest messages (no limit beats any). */
export function largest(limits: readonly SizeLimit[]): SizeLimit | undefined {
  let best: SizeLimit | undefined;
  for (const limit of limits) {
    if (limit.bytes === 0) return limit;
    if (!best || limit.bytes > best.bytes) best = limit;
  }
  return best;
}

/**
 * The words a scanner shows on its panel: `5.3.4 Message too large for Gmail: 25 MB max (this one
 * 31 MB)` (without "for …" when the label is empty). Sizes in MB, with as many decimals as it
 * takes for the two to differ.
 */
export function tooLargeText(limit: SizeLimit, size: number): string {
  const max = (digits: number) => megabytes(limit.bytes, digits, Math.floor);
  let digits = limit.bytes >= 10 * MB ? 0 : 1;
  while (digits < 2 && max(digits) === megabytes(size, digits, Math.round)) digits++;
  // Never "25 MB max (this one 25 MB)": rounded up, the message shows larger.
  const shown = max(digits) === megabytes(size, digits, Math.round) ? megabytes(size, digits, Math.ceil) : megabytes(size, digits, Math.round);
  return `5.3.4 Message too large${limit.label ? ` for ${limit.label}` : ''}: ${max(digits)} MB max (this one ${shown} MB)`;
}

/** `25 MB`, `0.5 MB`: how check-config and the docs write a limit. */
export function formatMegabytes(bytes: number): string {
  return `${megabytes(bytes, bytes >= 10 * MB ? 0 : 1, Math.round)} MB`;
}

function megabytes(bytes: number, digits: number, round: (n: number) => number): string {
  const scale = 10 ** digits;
  return String(round((bytes / MB) * scale) / scale);
}
