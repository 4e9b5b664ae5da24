import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import type { SMTPServerAddress, SMTPServerError } from 'smtp-server';
import { canonicalDomain } from '../config/domains.js';
import { REPLY, smtpError } from './replies.js';

/** What smtp-server's strict parser checks (3.21), less its refusal of a trailing dot. */
const DOMAIN_CHARS = /^[a-zA-Z0-9\u0080-\uFFFF.-]+$/;
const ASCII = /^[\x00-\x7f]*$/;

/**
 * An envelope address as relaybox keeps it, or null when malformed. smtp-server (in lenient mode,
 * so that `a@example.com.` reaches us) has already turned an `xn--` domain into Unicode; an ASCII
 * local part goes on with the ASCII domain again, which every upstream takes (a Unicode domain
 * needs SMTPUTF8 upstream). The trailing dot of a fully qualified name is dropped.
 */
export function canonicalAddress(address: string): string | null {
  if (address === '' || address.toLowerCase() === 'postmaster') return address; // <> and RFC 5321's domainless postmaster
  const parts = address.split('@');
  if (parts.length !== 2 || !parts[0] || !parts[1]) return null;
  const local = parts[0];
  const domain = parts[1].replace(/\.$/, '');
  if (local.length + 1 + domain.length > 253) return null;
  if (local.startsWith('.') || local.endsWith('.') || local.includes('..')) return null;
  if (domain.startsWith('[') && domain.endsWith(']')) {
    const ip = domain.slice(1, -1);
    return isIPv4(ip) || (/^ipv6:/i.test(ip) && isIPv6(ip.slice(5))) ? `${local}@${domain}` : null;
  }
  if (domain.startsWith('.') || domain.includes('..') || domain.includes('.-') || domain.includes('-.') || !DOMAIN_CHARS.test(domain)) return null;
  const ascii = domainToASCII(domain).toLowerCase();
  if (!ascii) return null;
  return ASCII.test(local) ? `${local}@${ascii}` : `${local}@${domain}`;
}

// What the MAIL/RCPT parameters relaybox takes may be (smtp-server checks their values): what
// EHLO offers, and AUTH= (RFC 4954) and the DSN ones, which smtp-server ignores while DSN is hidden.
const MAIL_PARAMS = new Set(['SIZE', 'BODY', 'SMTPUTF8', 'REQUIRETLS', 'AUTH', 'RET', 'ENVID']);
const RCPT_PARAMS = new Set(['NOTIFY', 'ORCPT']);

/**
 * 555 for a parameter relaybox does not know (RFC 5321 4.1.1.11) — smtp-server ignores those. This
 * also refuses what a stray space leaves behind: `MAIL FROM:<a@b> junk`, `MAIL FROM:scanner @corp.example`.
 */
function unknownParameter(address: SMTPServerAddress, known: Set<string>): SMTPServerError | null {
  const unknown = Object.keys(address.args || {}).find((key) => !known.has(key));
  return unknown === undefined ? null : smtpError(555, `5.5.4 Unsupported parameter ${unknown.slice(0, 64)}`);
}

export interface Refusal {
  error: SMTPServerError;
  /** The recipient's domain is not in smtp.allow_recipient_domains (else: malformed). */
  relayDenied: boolean;
}

/**
 * MAIL FROM and RCPT TO checks: syntax as smtp-server's strict mode has it, known parameters, and for recipients
 * smtp.allow_recipient_domains, matched in either IDN form and with or without a trailing dot.
 * An accepted address is rewritten in place to its canonical form (smtp-server keeps that object
 * as the envelope's).
 */
export class EnvelopeCheck {
  private readonly domains: Set<string>;

  constructor(options: { allowRecipientDomains: string[] }) {
    this.domains = new Set(options.allowRecipientDomains.map((d) => canonicalDomain(d) ?? d));
  }

  sender(address: SMTPServerAddress): SMTPServerError | null {
    const canonical = canonicalAddress(address.address);
    if (canonical === null) return smtpError(501, '5.1.7 Bad sender address syntax');
    const refusal = unknownParameter(address, MAIL_PARAMS);
    if (refusal) return refusal;
    address.address = canonical;
    return null;
  }

  recipient(address: SMTPServerAddress): Refusal | null {
    const canonical = canonicalAddress(address.address);
    if (canonical === null || canonical === '') return { error: smtpError(501, '5.1.3 Bad recipient address syntax'), relayDenied: false };
    const unknown = unknownParameter(address, RCPT_PARAMS);
    if (unknown) return { error: unknown, relayDenied: false };
    if (this.domains.size > 0) {
      const at = canonical.lastIndexOf('@');
      const domain = at >= 0 ? canonicalDomain(canonical.slice(at + 1)) : undefined;
      if (!domain || !this.domains.has(domain)) {
        return { error: smtpError(550, REPLY.relayDenied(at >= 0 ? canonical.slice(at + 1) : canonical)), relayDenied: true };
      }
    }
    address.address = canonical;
    return null;
  }
}
