import { describe, expect, it } from 'vitest';
import type { UpstreamConfig } from '../src/config/upstreams.js';
import { HINT_TABLE, matchHint, ReplyHints } from '../src/hints/hint.js';
import { hintTarget, type HintTarget } from '../src/hints/target.js';

const HOSTNAME = 'relaybox.corp.example';

/** One upstream of each kind, as a user configures it. */
const UPSTREAMS = {
  m365Smtp: { name: 'm365', type: 'smtp', host: 'smtp.office365.com', port: 587, security: 'starttls', auth: { user: 'scanner@contoso.com', pass: 'x' }, tls: { verify: true, ca: '' } },
  m365Oauth: { name: 'm365-oauth', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', client_id: 'c', tenant_id: 't', grant: 'refresh_token', tls: { verify: true, ca: '' } },
  relay: { name: 'google', type: 'gmail-relay', tls: { verify: true, ca: '' } },
  appPassword: { name: 'gmail', type: 'gmail-app-password', user: 'scanner@example.com', password: 'abcdabcdabcdabcd', tls: { verify: true, ca: '' } },
  gmailOauth: { name: 'gmail-oauth', type: 'gmail-oauth2', user: 'scanner@example.com', client_id: 'c', tls: { verify: true, ca: '' } },
  generic: { name: 'isp', type: 'smtp', host: 'mail.isp.example', port: 587, security: 'starttls', auth: { user: 'box@isp.example', pass: 'x' }, tls: { verify: true, ca: '' } },
} as unknown as Record<string, UpstreamConfig>;

const target = (key: keyof typeof UPSTREAMS): HintTarget => hintTarget(UPSTREAMS[key]!, HOSTNAME);

/** A real reply per row (from the providers' documentation, REFERENCE.md or Node), and who sent it. */
const SAMPLES: [id: string, upstream: keyof typeof UPSTREAMS, reply: string][] = [
  ['m365-smtp-auth-disabled', 'm365Smtp', '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [AM0PR02CA0001.eurprd02.prod.outlook.com]'],
  ['m365-security-defaults', 'm365Smtp', "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator. [LO4P123CA0042.GBRP123.PROD.OUTLOOK.COM]"],
  ['m365-sign-in-blocked', 'm365Smtp', '535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator.'],
  ['m365-basic-auth-off', 'm365Smtp', '550 5.7.30 Basic authentication is not supported for Client Submission.'],
  ['m365-oauth-refused', 'm365Oauth', '535 5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05.prod.outlook.com]'],
  ['m365-password-refused', 'm365Smtp', '535 5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05.prod.outlook.com]'],
  ['m365-send-as-denied', 'm365Smtp', '554 5.2.252 SendAsDenied; scanner@contoso.com not allowed to send as boss@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied'],
  ['m365-send-as-denied', 'm365Oauth', '550 5.7.60 SMTP; Client does not have permissions to send as this sender'],
  ['m365-not-authenticated', 'm365Smtp', '530 5.7.57 Client not authenticated to send mail. [AM6PR0732CA0065.eurprd07.prod.outlook.com]'],
  ['m365-quota', 'm365Smtp', '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception'],
  ['m365-quota', 'm365Oauth', "550 5.1.90 Your message can't be sent because you've reached your daily limit for message recipients"],
  ['m365-bad-outbound-sender', 'm365Smtp', '550 5.1.8 Access denied, bad outbound sender'],
  ['m365-tenant-ip-blocked', 'm365Smtp', '550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.'],
  ['m365-tenant-blocked', 'm365Smtp', '550 5.7.705 Access denied, tenant has exceeded threshold'],
  ['m365-too-big', 'm365Smtp', '552 5.3.4 Message size exceeds fixed maximum message size'],
  ['google-relay-unknown-sender', 'relay', '550-5.7.0 Mail relay denied [203.0.113.7]. Invalid credentials for relay for one of\n550-5.7.0 the domains in: corp.example (as obtained from HELO and MAIL FROM).\n550 5.7.0 Email is being sent from a domain or IP address which isn\'t registered in your Workspace account. - gsmtp'],
  ['google-ehlo', 'relay', '421 4.7.0 Try again later, closing connection. (EHLO) x5-20020a05600c2ac500b00400000000000sm1234567wmb.1 - gsmtp'],
  ['google-quota', 'relay', '550 5.4.5 Daily SMTP relay limit exceeded for user. For more information on SMTP relay sending limits please contact your administrator - gsmtp'],
  ['google-quota', 'appPassword', '550 5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to https://support.google.com/a/answer/166852 - gsmtp'],
  ['google-peak-limit', 'relay', '450 4.2.1 Peak SMTP relay limit exceeded for customer. For more information on SMTP relay sending limits please contact your administrator - gsmtp'],
  ['google-dmarc', 'relay', "550-5.7.26 Unauthenticated email from corp.example is not accepted due to domain's DMARC policy. Please contact the administrator of corp.example domain. - gsmtp"],
  ['google-too-big', 'appPassword', "552-5.2.3 Your message exceeded Google's message size limits. To view our message size guidelines, go to https://support.google.com/mail/?p=MaxSizeError - gsmtp"],
  ['google-app-password-refused', 'appPassword', '535-5.7.8 Username and Password not accepted. For more information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials 2adb3069b0e04-521f38d7f71sm2899713e87.194 - gsmtp'],
  ['google-token-refused', 'gmailOauth', '535-5.7.8 Username and Password not accepted. Learn more at\n535 5.7.8 https://support.google.com/mail/?p=BadCredentials c4-c35345.73 - gsmtp'],
  ['google-relay-login-refused', 'relay', '535-5.7.8 Username and Password not accepted. For more information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials - gsmtp'],
  ['google-app-password-required', 'appPassword', '534-5.7.9 Application-specific password required. For more information, go to\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor - gsmtp'],
  ['google-web-login-required', 'appPassword', '534-5.7.14 <https://accounts.google.com/signin/continue?sarp=1> Please log in via your web browser and\n534 5.7.14 then try again. https://support.google.com/mail/answer/78754 - gsmtp'],
  ['google-too-many-logins', 'appPassword', '454 4.7.0 Too many login attempts, please try again later. - gsmtp'],
  ['google-rate', 'relay', '421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address. - gsmtp'],
  ['google-ptr', 'relay', '550-5.7.25 The IP address sending this message does not have a PTR record setup. - gsmtp'],
  ['google-rfc5322', 'relay', "550-5.7.1 This message is not RFC 5322 compliant. There are multiple From headers. To reduce the amount of spam sent to Gmail, this message has been blocked. - gsmtp"],
  ['refused', 'generic', 'connection refused by 127.0.0.1:587 — nothing listens there (ECONNREFUSED)'],
  ['refused', 'relay', 'connect ECONNREFUSED 142.250.27.28:587'],
  ['timed-out', 'generic', 'connection timed out after 10s (delivery.timeouts.connect)'],
  ['unreachable', 'm365Smtp', 'no route to 2603:1026:c0a::2:587 (EHOSTUNREACH)'],
  ['dns', 'generic', 'mail.isp.example not found in DNS (ENOTFOUND)'],
  ['tls-wrong-port', 'generic', 'TLS handshake failed: the server speaks plain text here (ERR_SSL_WRONG_VERSION_NUMBER)'],
  ['no-greeting', 'generic', 'Greeting never received: the server took the connection and said nothing (a TLS port like 465 used without security: tls?) (ETIMEDOUT)'],
  ['tls-expired', 'generic', "the server's certificate has expired (CERT_HAS_EXPIRED)"],
  ['tls-name', 'generic', "Hostname/IP does not match certificate's altnames: Host: mail.isp.example. is not in the cert's altnames (ERR_TLS_CERT_ALTNAME_INVALID)"],
  ['tls-untrusted', 'generic', "the server's certificate is self-signed (DEPTH_ZERO_SELF_SIGNED_CERT)"],
  ['reset', 'generic', 'read ECONNRESET'],
  ['starttls-required', 'generic', '530 5.7.0 Must issue a STARTTLS command first'],
  ['relay-denied', 'generic', '554 5.7.1 <someone@elsewhere.example>: Relay access denied'],
  ['login-refused', 'generic', '535 5.7.8 Error: authentication failed: authentication failure'],
  ['too-big', 'generic', '552 5.3.4 Message size exceeds fixed limit'],
  // relaybox's own words (delivery/sizeFit.ts), ahead of Microsoft's 5.3.4 row.
  ['relaybox-too-big', 'm365Oauth', '552 5.3.4 Message too large for Microsoft 365: 35 MB max (this one 41 MB)'],
];

describe('reply hints: the table, row by row', () => {
  it.each(SAMPLES)('%s for a %s upstream', (id, upstream, reply) => {
    const t = target(upstream);
    const match = matchHint(reply, t);
    expect(match?.id).toBe(id);
    // Names the upstream's own things where the row does.
    const row = HINT_TABLE.find((r) => r.id === id)!;
    expect(match!.hint).toBe(row.hint(t));
  });

  it('has a real sample for every row', () => {
    const sampled = new Set(SAMPLES.map(([id]) => id));
    expect(HINT_TABLE.map((r) => r.id).filter((id) => !sampled.has(id))).toEqual([]);
  });

  it('fills in the user and says what to run (the issue\'s example)', () => {
    const hints = new ReplyHints({ hostname: HOSTNAME, upstreams: [UPSTREAMS.m365Smtp!] });
    expect(hints.for('m365', SAMPLES[0]![2])).toBe(
      'Microsoft 365 has SMTP AUTH turned off for scanner@contoso.com: run `Set-CASMailbox -Identity scanner@contoso.com -SmtpClientAuthenticationDisabled $false` ' +
        '(and check `Get-TransportConfig` for the tenant), or use the microsoft365-graph upstream',
    );
  });

  it('matches by provider: Google\'s words at another server get no Google fix', () => {
    expect(matchHint('421 4.7.0 Try again later, closing connection. (EHLO)', target('generic'))).toBeNull();
    expect(matchHint('535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant', target('relay'))?.id).toBe('login-refused');
  });

  it('gives nothing for a reply it knows no fix for, or an upstream no longer configured', () => {
    const hints = new ReplyHints({ hostname: HOSTNAME, upstreams: [UPSTREAMS.generic!] });
    expect(hints.for('isp', '451 4.3.0 Try again later')).toBeNull();
    expect(hints.for('gone', 'connect ECONNREFUSED 127.0.0.1:587')).toBeNull();
    expect(hints.for(null, 'connect ECONNREFUSED 127.0.0.1:587')).toBeNull();
  });
});
