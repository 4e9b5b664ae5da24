/** Only this much of a message is searched for its header block; the rest is body. */
export const HEADER_SCAN_BYTES = 64 * 1024;
/** RFC 5322's line limit; also the most of a subject the spool keeps. */
export const MAX_SUBJECT_CHARS = 998;

export interface HeaderField {
  /** As written, e.g. `Subject`. */
  name: string;
  /** Unfolded and trimmed; encoded words are left as they are (see decodeEncodedWords). */
  value: string;
}

const FIELD_NAME = /^[!-9;-~]+$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The header fields of a message: the first up to 64 KiB of `buf`, up to the first empty line.
 * Takes CRLF and bare LF; lines that are not fields (an mbox `From ` line, garbage) are skipped.
 */
export function parseHeaderBlock(buf: Buffer): HeaderField[] {
  // latin1 maps bytes to chars one to one, so 8-bit bytes survive until a value is decoded.
  const text = buf.subarray(0, HEADER_SCAN_BYTES).toString('latin1');
  const blank = /^\r?\n/.test(text) ? { index: 0 } : /\r?\n\r?\n/.exec(text);
  const block = text.slice(0, blank ? blank.index : text.length);
  const raw: HeaderField[] = [];
  let current: HeaderField | undefined;
  for (const line of block.split(/\r?\n/)) {
    if (/^[ \t]/.test(line)) {
      // Unfolding removes the line break only; the whitespace that starts the next line stays.
      if (current) current.value += line;
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trimEnd() : '';
    current = FIELD_NAME.test(name) ? { name, value: line.slice(colon + 1) } : undefined;
    if (current) raw.push(current);
  }
  return raw.map((field) => ({ name: field.name, value: bytesToText(field.value).trim() }));
}

/** The header block as `Name: value` lines for a person to read (`queue show`), encoded words decoded. */
export function headerLines(buf: Buffer): string[] {
  return parseHeaderBlock(buf).map((f) => `${f.name}: ${decodeEncodedWords(f.value).replace(/[\x00-\x08\x0a-\x1f\x7f]/g, ' ')}`);
}

/** The decoded Subject, capped at 998 characters; null when the message has none. */
export function subjectOf(buf: Buffer): string | null {
  const field = parseHeaderBlock(buf).find((f) => f.name.toLowerCase() === 'subject');
  if (!field) return null;
  // Control characters could split a log line or a console row; a subject has no use for them.
  const subject = decodeEncodedWords(field.value).replace(/[\x00-\x08\x0a-\x1f\x7f]/g, ' ');
  if (subject.length <= MAX_SUBJECT_CHARS) return subject;
  const capped = subject.slice(0, MAX_SUBJECT_CHARS);
  // Never keep half of a surrogate pair.
  return /[\ud800-\udbff]$/.test(capped) ? capped.slice(0, -1) : capped;
}

const ENCODED_WORD = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;

interface PendingWords {
  charset: string;
  bytes: Buffer[];
  raw: string;
}

/**
 * Decodes RFC 2047 encoded words (`=?utf-8?B?...?=`, `=?iso-8859-1?Q?...?=`). Whitespace between
 * adjacent encoded words is dropped, and adjacent words in one charset are joined as bytes before
 * decoding, since encoders split multi-byte characters across words. A word in a charset this
 * Node does not know is kept as written.
 */
export function decodeEncodedWords(text: string): string {
  let out = '';
  let last = 0;
  let pending: PendingWords | undefined;
  for (const m of text.matchAll(ENCODED_WORD)) {
    const gap = text.slice(last, m.index);
    const charset = (m[1] ?? '').split('*')[0]!.toLowerCase();
    const bytes = decodeWordBytes(m[2]!, m[3] ?? '');
    if (pending && /^[ \t\r\n]*$/.test(gap)) {
      if (pending.charset === charset) {
        pending.bytes.push(bytes);
        pending.raw += gap + m[0];
      } else {
        out += flush(pending);
        pending = { charset, bytes: [bytes], raw: m[0] };
      }
    } else {
      out += (pending ? flush(pending) : '') + gap;
      pending = { charset, bytes: [bytes], raw: m[0] };
    }
    last = m.index + m[0].length;
  }
  return out + (pending ? flush(pending) : '') + text.slice(last);
}

function decodeWordBytes(encoding: string, data: string): Buffer {
  if (encoding.toUpperCase() === 'B') return Buffer.from(data, 'base64');
  const latin = data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(latin, 'latin1');
}

function flush(words: PendingWords): string {
  try {
    return new TextDecoder(words.charset).decode(Buffer.concat(words.bytes));
  } catch {
    return words.raw;
  }
}

/** 8-bit header bytes: UTF-8 when they are valid UTF-8 (SMTPUTF8 devices), else Latin-1. */
function bytesToText(latin1: string): string {
  if (!/[\x80-\xff]/.test(latin1)) return latin1;
  try {
    return UTF8.decode(Buffer.from(latin1, 'latin1'));
  } catch {
    return latin1;
  }
}
