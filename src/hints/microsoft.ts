import type { HintRow } from './row.js';

const M365 = ['microsoft365'] as const;

/**
 * Exchange Online's replies to SMTP client submission (smtp.office365.com), from Microsoft's
 * "Email non-delivery reports and SMTP errors in Exchange Online" and REFERENCE.md.
 */
export const MICROSOFT_ROWS: readonly HintRow[] = [
  {
    id: 'm365-smtp-auth-disabled',
    providers: M365,
    reply: /5\.7\.139\b.*SmtpClientAuthentication is disabled/is,
    hint: (t) =>
      `Microsoft 365 has SMTP AUTH turned off for ${t.user}: run \`Set-CASMailbox -Identity ${t.user} -SmtpClientAuthenticationDisabled $false\` ` +
      '(and check `Get-TransportConfig` for the tenant), or use the microsoft365-graph upstream',
  },
  {
    id: 'm365-security-defaults',
    providers: M365,
    reply: /5\.7\.139\b.*(security defaults|basic authentication is disabled)/is,
    hint: (t) => `Microsoft 365 blocks password logins for ${t.user} (security defaults or basic auth off): use the microsoft365-oauth2 or microsoft365-graph upstream instead of a password`,
  },
  {
    id: 'm365-sign-in-blocked',
    providers: M365,
    reply: /5\.7\.139\b/,
    hint: (t) => `Microsoft 365 refused the sign-in of ${t.user} (account locked or disabled, MFA or Conditional Access): check the sign-in logs in Entra ID for ${t.user}`,
  },
  {
    id: 'm365-basic-auth-off',
    providers: M365,
    reply: /5\.7\.30\b/,
    hint: (t) => `Microsoft 365 no longer takes a password for SMTP: change upstream ${t.name} to type microsoft365-oauth2 (or microsoft365-graph) for ${t.user}`,
  },
  {
    id: 'm365-oauth-refused',
    providers: M365,
    login: 'oauth',
    reply: /5\.7\.3\b/,
    hint: (t) =>
      `Microsoft 365 refused the token for ${t.user}: app-only access needs the SMTP.SendAsApp permission, the Exchange service principal and a mailbox permission for ${t.user}; ` +
      `delegated access needs \`relaybox oauth microsoft --upstream ${t.name}\` again (refresh tokens die after 90 days unused)`,
  },
  {
    id: 'm365-password-refused',
    providers: M365,
    reply: /5\.7\.3\b/,
    hint: (t) => `Microsoft 365 refused the password of ${t.user}: check upstreams ${t.name} auth, and whether MFA is on for it (then use the microsoft365-oauth2 upstream)`,
  },
  {
    id: 'm365-send-as-denied',
    providers: M365,
    reply: /5\.7\.60\b|SendAsDenied/i,
    hint: (t) =>
      `${t.user} may not send as this message's sender: grant it Send As (\`Add-RecipientPermission -Identity <sender> -Trustee ${t.user} -AccessRights SendAs\`), ` +
      `or rewrite the sender to ${t.user} with a route's rewrite`,
  },
  {
    id: 'm365-not-authenticated',
    providers: M365,
    reply: /5\.7\.57\b/,
    hint: (t) => `Microsoft 365 takes mail on ${t.host} only after a login: give upstream ${t.name} a login (microsoft365-oauth2), or relay by IP through your tenant's MX host with a connector`,
  },
  {
    id: 'm365-quota',
    providers: M365,
    reply: /SubmissionQuotaExceeded|5\.1\.90\b/i,
    hint: (t) => `${t.user} reached Microsoft 365's 10,000 recipients a day: relaybox holds this upstream's mail for delivery.quota_hold and sends it when the day's window passes; add a fail-over upstream to send meanwhile`,
  },
  {
    id: 'm365-bad-outbound-sender',
    providers: M365,
    reply: /5\.1\.8\b/,
    hint: (t) => `Microsoft blocked ${t.user} from sending (it looked compromised): secure the account, then release it under Restricted entities in Microsoft Defender`,
  },
  {
    id: 'm365-tenant-ip-blocked',
    providers: M365,
    reply: /5\.7\.708\b/,
    hint: () => 'Microsoft refuses mail from this tenant over its low-reputation pool (usual for new tenants): add and verify your own domain, or ask Microsoft support to lift it',
  },
  {
    id: 'm365-tenant-blocked',
    providers: M365,
    reply: /5\.7\.7[0-4]\d\b/,
    hint: () => 'Microsoft has blocked the whole tenant from sending (too much spam or an unverified domain): an admin must find the cause and open a support case',
  },
  {
    id: 'm365-too-big',
    providers: M365,
    reply: /5\.3\.4\b|5\.2\.3\b|SizeLimit/i,
    hint: (t) => `The message is bigger than Microsoft 365 takes for ${t.user} (35 MB by default, counted after encoding): scan at a lower resolution or split it, or raise MaxSendSize`,
  },
];
