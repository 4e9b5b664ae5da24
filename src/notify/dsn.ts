import { randomUUID } from 'node:crypto';
import MimeNode from 'nodemailer/lib/mime-node';
import type { Words } from './words.js';

export interface DsnInput {
  hostname: string;
  words: Words;
  /** The failed message's envelope sender: the DSN's only recipient. */
  to: string;
  recipients: string[];
  /** The upstream's final reply, e.g. `550 5.1.1 <x@example.com>: user unknown`. */
  reply: string;
  arrivedAt: Date;
  /** The failed message's header block (up to its blank line), for text/rfc822-headers. */
  header: Buffer | null;
}

/** `5.1.1` out of a reply that carries an enhanced status code; else the class its code says. */
function statusCode(reply: string): string {
  const enhanced = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply);
  if (enhanced) return enhanced[1]!;
  return reply.startsWith('4') ? '4.0.0' : '5.0.0';
}

/** One line for a DSN field: no CR/LF can come from a reply into the report's fields. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').trim();
}

/**
 * A delivery status notification (RFC 3464): multipart/report with a human part, the
 * machine-readable message/delivery-status, and the failed message's header. Sent with an empty
 * envelope sender (RFC 5321 §4.5.5) so that it can never bounce back. CRLF bytes for the spool.
 */
export async function composeDsn(input: DsnInput): Promise<Buffer> {
  const root = new MimeNode('multipart/report; report-type=delivery-status');
  root.setHeader({
    From: `Mail Delivery System <MAILER-DAEMON@${input.hostname}>`,
    To: input.to,
    Subject: input.words.dsnSubject,
    'Message-ID': `<${randomUUID()}@${input.hostname}>`,
    Date: new Date(),
    // RFC 3834 §5: a DSN is an automatic reply; mail that says so is never answered automatically.
    'Auto-Submitted': 'auto-replied',
  });
  const reply = oneLine(input.reply);
  root.createChild('text/plain; charset=utf-8').setContent(`${input.words.dsn(input.hostname)}\n\n${input.recipients.map((r) => `  ${r}: ${reply}`).join('\n')}\n`);
  const perRecipient = input.recipients.map((r) =>
    [`Final-Recipient: rfc822; ${oneLine(r)}`, 'Action: failed', `Status: ${statusCode(reply)}`, `Diagnostic-Code: smtp; ${reply}`].join('\r\n'),
  );
  const report = [`Reporting-MTA: dns; ${input.hostname}`, `Arrival-Date: ${input.arrivedAt.toUTCString()}`, ...perRecipient.map((p) => `\r\n${p}`)].join('\r\n');
  root.createChild('message/delivery-status').setContent(`${report}\r\n`);
  // The bytes as they came: an 8-bit header stays what it was (the part's transfer encoding carries it).
  if (input.header) root.createChild('text/rfc822-headers').setContent(input.header);
  const built = await root.build();
  return Buffer.from(built.toString('binary').replace(/\r?\n/g, '\r\n'), 'binary');
}

/** The header block of a message head: up to and including its first blank line. */
export function headerBlock(head: Buffer): Buffer {
  const end = head.indexOf('\r\n\r\n');
  return end < 0 ? head : head.subarray(0, end + 2);
}
