/** Sending limits at run time; no schema code here (the delivery thread loads this; the keys are in upstreamKeys.ts). */
/** How many messages (and recipients) an upstream may take in rolling windows; 0 = no limit. */
export interface RateLimits {
  per_minute: number;
  per_hour: number;
  per_day: number;
  recipients_per_day: number;
}

export const RATE_WINDOWS = ['per_minute', 'per_hour', 'per_day', 'recipients_per_day'] as const;
export type RateWindow = (typeof RATE_WINDOWS)[number];

/** The length of each rolling window. */
export const RATE_WINDOW_MS: Record<RateWindow, number> = {
  per_minute: 60_000,
  per_hour: 3_600_000,
  per_day: 86_400_000,
  recipients_per_day: 86_400_000,
};

/** How a deferral for a sending limit starts (`paced until 10:42`): such waits are no failure. */
export const PACED_REPLY_PREFIX = 'paced until ';

const NONE: RateLimits = { per_minute: 0, per_hour: 0, per_day: 0, recipients_per_day: 0 };

/**
 * The provider's published sending limits (README "Provider limits", checked 2026-11-27): relaybox
 * stays under them instead of being refused. Relay providers' limits depend on the plan or
 * account (SES sending quota, SendGrid, Mailgun, Brevo plans): none is preset for them.
 */
export function presetRate(u: { type: string; user?: string }): RateLimits {
  switch (u.type) {
    case 'microsoft365-oauth2':
    case 'microsoft365-graph':
      // Exchange Online sending limits apply to SMTP AUTH and Graph sendMail alike.
      return { ...NONE, per_minute: 30, recipients_per_day: 10_000 };
    case 'gmail-relay':
      return { ...NONE, per_day: 10_000, recipients_per_day: 10_000 };
    case 'gmail-oauth2':
    case 'gmail-app-password':
    case 'gmail-api':
      // A personal Gmail account may send to 500 recipients a day; a Workspace user 2,000 messages and 10,000 recipients.
      return /@(gmail|googlemail)\.com$/i.test(u.user ?? '') ? { ...NONE, per_day: 500, recipients_per_day: 500 } : { ...NONE, per_day: 2_000, recipients_per_day: 10_000 };
    default:
      return { ...NONE };
  }
}

/** The limits an upstream runs under: its preset, with each key the config gives instead. */
export function rateLimitsOf(u: { type: string; user?: string; rate?: Partial<Record<RateWindow, number | undefined>> | undefined }): RateLimits {
  const limits = presetRate(u);
  for (const key of RATE_WINDOWS) {
    const given = u.rate?.[key];
    if (given !== undefined) limits[key] = given;
  }
  return limits;
}
