import { Readable } from 'node:stream';
import { addressParser } from 'postal-mime';

/** Header blocks past this are not a device's: the rest goes through untouched. */
const MAX_HEADER_BYTES = 256 * 1024;

/**
 * The HTTPS APIs deliver to the addresses in To, Cc and Bcc, not to an SMTP envelope. A device
 * whose To: lists nobody (a FRITZ!Box), or mail for a Bcc the device kept in the envelope only,
 * would reach no one: the envelope recipients the header does not name are added as a `Bcc:`
 * field on top of the message (both APIs take it as recipients and strip it). Only the header
 * block is held while looking; the body streams through.
 */
export function withEnvelopeBcc(message: Readable, recipients: readonly string[]): Readable {
  async function* withBcc(): AsyncGenerator<Buffer> {
    let head: Buffer = Buffer.alloc(0);
    let passing = false;
    for await (const chunk of message) {
      const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
      if (passing) {
        yield bytes;
        continue;
      }
      head = head.length === 0 ? bytes : Buffer.concat([head, bytes]);
      if (headerEnd(head) === -1 && head.length < MAX_HEADER_BYTES) continue;
      passing = true;
      yield* headWithBcc(head, recipients);
    }
    if (!passing) yield* headWithBcc(head, recipients);
  }
  return Readable.from(withBcc(), { objectMode: false });
}

function* headWithBcc(head: Buffer, recipients: readonly string[]): Generator<Buffer> {
  const end = headerEnd(head);
  const named = headerRecipients(head.subarray(0, end === -1 ? head.length : end).toString('utf8'));
  const missing = recipients.filter((r) => !named.has(r.toLowerCase()));
  if (missing.length > 0) yield Buffer.from(`Bcc: ${missing.join(',\r\n ')}\r\n`);
  yield head;
}

/** Where the header block ends (the empty line), or -1 while it has not been seen. */
function headerEnd(bytes: Buffer): number {
  const crlf = bytes.indexOf('\r\n\r\n');
  const lf = bytes.indexOf('\n\n');
  if (crlf === -1) return lf;
  return lf === -1 ? crlf : Math.min(crlf, lf);
}

/** The addresses To, Cc and Bcc name, lower-cased (groups flattened). */
export function headerRecipients(header: string): Set<string> {
  const found = new Set<string>();
  // Unfold (RFC 5322 §2.2.3): a line starting with white space continues the field above.
  for (const field of header.split(/\r?\n(?![ \t])/)) {
    const m = /^(to|cc|bcc)[ \t]*:(.*)$/is.exec(field);
    if (!m) continue;
    for (const mailbox of addressParser(m[2]!.replace(/\r?\n/g, ''), { flatten: true })) {
      if (mailbox.address) found.add(mailbox.address.toLowerCase());
    }
  }
  return found;
}
