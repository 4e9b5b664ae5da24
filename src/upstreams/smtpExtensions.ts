import { UnsupportedMessage, type Envelope } from './types.js';

/** What goes to nodemailer as the envelope, and in which form the body goes. */
export interface MailFromPlan {
  /** nodemailer adds `BODY=8BITMIME` for `use8BitMime`, and `SMTPUTF8` for a non-ASCII address, where the upstream offers them. */
  envelope: { from: string; to: string[]; use8BitMime: boolean };
  /** The upstream lacks 8BITMIME and the message has 8-bit bytes: send the 7-bit form. */
  sevenBit: boolean;
  /** The upstream cannot take this message; nothing is to be sent. */
  refusal: UnsupportedMessage | null;
}

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Decides MAIL FROM once the upstream's EHLO answer is known. A 7-bit message with ASCII
 * addresses goes as ever: no parameter, the body untouched. An address with a non-ASCII local
 * part (domains are ASCII by now, see src/ingress/addresses.ts) needs SMTPUTF8: without it there
 * is no faithful way to send the message, so this upstream refuses it before MAIL FROM.
 */
export function planMailFrom(envelope: Envelope, extensions: ReadonlySet<string>, upstream: string): MailFromPlan {
  const plain = { from: envelope.from, to: [...envelope.to] };
  const needsUtf8 = [envelope.from, ...envelope.to].find((address) => NON_ASCII.test(address));
  if (needsUtf8 !== undefined && !extensions.has('SMTPUTF8')) {
    const reply = `upstream ${upstream} does not offer SMTPUTF8, which the address <${needsUtf8}> needs (a non-ASCII name before the @); nothing was sent`;
    return { envelope: { ...plain, use8BitMime: false }, sevenBit: false, refusal: new UnsupportedMessage(reply) };
  }
  const sevenBit = envelope.eightBit === true && !extensions.has('8BITMIME');
  const use8BitMime = !sevenBit && (envelope.eightBit === true || envelope.declared8BitMime === true);
  return { envelope: { ...plain, use8BitMime }, sevenBit, refusal: null };
}

interface PoolInternals {
  _connections?: Array<{ queueEntry?: { mail?: unknown } | false; connection?: { _supportedExtensions?: string[] } }>;
}

/**
 * The extensions the upstream listed in its EHLO answer, for the pooled connection that is
 * sending `mail`. nodemailer keeps them on the connection (`_supportedExtensions`) and offers no
 * public way to them; this is the one place relaybox reads them. Null when they cannot be found
 * (a nodemailer that changed): the caller then assumes neither 8BITMIME nor SMTPUTF8, which is
 * always safe.
 */
export function extensionsOf(pool: unknown, mail: unknown): ReadonlySet<string> | null {
  const resource = (pool as PoolInternals)._connections?.find((c) => c.queueEntry && c.queueEntry.mail === mail);
  const listed = resource?.connection?._supportedExtensions;
  return Array.isArray(listed) ? new Set(listed) : null;
}
