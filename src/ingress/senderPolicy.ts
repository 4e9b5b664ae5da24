import addressparser from 'nodemailer/lib/addressparser';
import type { SMTPServerError, SMTPServerSession } from 'smtp-server';
import { globToRegExp } from '../config/glob.js';
import { findHeaderSection } from '../message/fixups.js';
import { parseHeaderBlock } from '../message/headers.js';
import { canonicalAddress } from './addresses.js';
import { REPLY, smtpError } from './replies.js';

export interface SenderPolicyOptions {
  /** smtp.auth.users; a login with `allowed_from` may send only as those addresses. */
  users: { username: string; allowed_from?: string[] | undefined }[];
}

/**
 * `smtp.auth.users[].allowed_from`: the envelope From (at MAIL FROM) and every address in the
 * header From (at the end of DATA) a login may use. A session without a login — AUTH optional, or
 * taken and ignored without users — is not anyone's, so no list restricts it: smtp.allow_networks
 * and `auth.required` are what keep such devices out.
 */
export class SenderPolicy {
  private readonly allowed: Map<string, RegExp[]>;

  constructor(options: SenderPolicyOptions) {
    this.allowed = new Map(options.users.flatMap((u) => (u.allowed_from ? [[u.username, u.allowed_from.map(globToRegExp)] as const] : [])));
  }

  /** Null when the session may use `address` (canonical, '' for `<>`) as its envelope sender. */
  envelope(session: SMTPServerSession, address: string): SMTPServerError | null {
    const user = this.restricted(session);
    return user && !user.patterns.some((p) => p.test(address)) ? smtpError(553, REPLY.senderNotAllowed(address, user.name)) : null;
  }

  /**
   * Null when every address of every From field in the header section may be used. `head` is the
   * start of the message, `complete` when it is all of it. A From without any address is given the
   * envelope sender by the fix-ups (message/from.ts), which MAIL FROM has checked already.
   */
  header(session: SMTPServerSession, head: Buffer, complete: boolean): SMTPServerError | null {
    const user = this.restricted(session);
    if (!user) return null;
    // A From past the part read could go upstream unchecked; no device writes such a header.
    if (findHeaderSection(head, complete) === null) return smtpError(553, REPLY.headerTooBigToCheck(user.name));
    const froms = parseHeaderBlock(head).filter((f) => f.name.toLowerCase() === 'from');
    for (const { address } of froms.flatMap((f) => addressparser(f.value, { flatten: true }))) {
      if (!address) continue;
      const canonical = canonicalAddress(address) ?? address;
      if (!user.patterns.some((p) => p.test(canonical))) return smtpError(553, REPLY.senderNotAllowed(asReplyText(canonical), user.name));
    }
    return null;
  }

  private restricted(session: SMTPServerSession): { name: string; patterns: RegExp[] } | null {
    // A string only for a real login (auth.ts): an ignored one is an object, and is no one.
    const name = typeof session.user === 'string' ? session.user : undefined;
    const patterns = name === undefined ? undefined : this.allowed.get(name);
    return name !== undefined && patterns ? { name, patterns } : null;
  }
}

/** A header's address in a reply line: no control character of a device's header reaches the client. */
function asReplyText(address: string): string {
  return address.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, 256);
}
