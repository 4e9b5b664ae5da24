import type { HintRow } from './row.js';

const RELAY = ['google-relay'] as const;
const GMAIL = ['gmail'] as const;
const GOOGLE = ['google-relay', 'gmail'] as const;

/**
 * Google's replies (smtp-relay.gmail.com and smtp.gmail.com), from Google Workspace's "SMTP error
 * reference" and REFERENCE.md.
 */
export const GOOGLE_ROWS: readonly HintRow[] = [
  {
    id: 'google-relay-unknown-sender',
    providers: RELAY,
    reply: /5\.7\.[01]\b.*(Invalid credentials for relay|Mail relay denied)/is,
    hint: (t) =>
      "Google's SMTP relay does not know this sender: add this box's public IP under Admin console > Apps > Google Workspace > Gmail > Routing > SMTP relay service, " +
      `and send from an address in your Workspace domains with hostname ${t.hostname} in one of them — or turn on "Require SMTP Authentication" there and give upstream ${t.name} auth`,
  },
  {
    id: 'google-ehlo',
    providers: GOOGLE,
    reply: /4\.7\.0\b.*\(EHLO\)/is,
    hint: (t) => `Google refused relaybox's EHLO name "${t.hostname}": set hostname to a full name with a dot in your domain (not localhost, not a bare Pi name)`,
  },
  {
    id: 'google-quota',
    providers: GOOGLE,
    reply: /5\.4\.5\b|daily (user )?(smtp )?(relay |sending )?limit/i,
    hint: () => "Google's daily sending limit is reached: relaybox holds this upstream's mail for delivery.quota_hold and sends it when the window passes; add a fail-over upstream to send meanwhile",
  },
  {
    id: 'google-peak-limit',
    providers: RELAY,
    reply: /4\.2\.1\b.*Peak SMTP relay limit/is,
    hint: () => "Google's 10-minute peak limit for the relay is reached: relaybox retries later on its own; spread large batches out",
  },
  {
    id: 'google-dmarc',
    providers: GOOGLE,
    reply: /5\.7\.26\b|4\.7\.26\b/,
    hint: () => "The sender's domain fails SPF/DKIM/DMARC: add Google to its SPF record (include:_spf.google.com), sign with DKIM (relaybox's dkim or Google's), or send from a domain you own",
  },
  {
    id: 'google-too-big',
    providers: GOOGLE,
    reply: /5\.2\.3\b/,
    hint: () => 'The message is over Gmail\'s 25 MB, counted after base64 (a scan over about 18 MB): scan at a lower resolution or as several files',
  },
  {
    id: 'google-app-password-refused',
    providers: GMAIL,
    login: 'password',
    reply: /5\.7\.8\b|BadCredentials/,
    hint: (t) =>
      `Google refused the app password of ${t.user}: it was revoked, or 2-Step Verification was turned off (which deletes app passwords). ` +
      `Make a new one at https://myaccount.google.com/apppasswords and put it in upstream ${t.name}'s password, or use gmail-oauth2`,
  },
  {
    id: 'google-token-refused',
    providers: GMAIL,
    login: 'oauth',
    reply: /5\.7\.8\b|BadCredentials/,
    hint: (t) => `Google refused the token for ${t.user}: authorize again with \`relaybox oauth google --upstream ${t.name}\` (tokens die when revoked, after a password change, or after 7 days while the consent screen is in Testing)`,
  },
  {
    id: 'google-relay-login-refused',
    providers: RELAY,
    reply: /5\.7\.8\b|BadCredentials/,
    hint: (t) => `Google's relay refused the login of ${t.user}: the relay takes an app password (2-Step Verification on) or no login with IP allowlisting; check upstream ${t.name}'s auth`,
  },
  {
    id: 'google-app-password-required',
    providers: GOOGLE,
    reply: /5\.7\.9\b/,
    hint: (t) => `Google takes no account password for ${t.user}: use type gmail-oauth2, or an app password (https://myaccount.google.com/apppasswords) with type gmail-app-password`,
  },
  {
    id: 'google-web-login-required',
    providers: GOOGLE,
    reply: /5\.7\.14\b/,
    hint: (t) => `Google blocks password sign-in for ${t.user}: use type gmail-oauth2, or an app password with type gmail-app-password`,
  },
  {
    id: 'google-too-many-logins',
    providers: GOOGLE,
    reply: /4\.7\.0\b.*Too many login attempts/is,
    hint: (t) => `Google saw too many logins from this box for ${t.user}: it clears within minutes; make sure no other device logs in with the same account in a loop`,
  },
  {
    id: 'google-rate',
    providers: GOOGLE,
    reply: /4\.7\.28\b/,
    hint: () => 'Google slows mail from this IP (an unusual rate, or spam-like mail): relaybox retries on its own; check that nothing sends bulk or spam through this box',
  },
  {
    id: 'google-ptr',
    providers: GOOGLE,
    reply: /5\.7\.25\b|4\.7\.0\b.*PTR/is,
    hint: () => "Google wants a reverse DNS (PTR) record for this box's public IP that matches a name resolving back to it: ask the ISP, or relay with a login",
  },
  {
    id: 'google-rfc5322',
    providers: GOOGLE,
    reply: /5\.7\.1\b.*RFC 5322/is,
    hint: () => 'Gmail refused the message as malformed (RFC 5322: From, Date or Message-ID): see the message\'s headers; relaybox fixes the known faults, report this one',
  },
];
