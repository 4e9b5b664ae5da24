import { encodeWords } from 'nodemailer/lib/mime-funcs';

/**
 * RFC 5322 fix-ups for mail from sloppy devices (REFERENCE.md "Message fix-ups before relaying"):
 * Google's relay answers `550 5.7.1` to a missing Message-ID, a missing or repeated From and
 * repeated single-instance headers. Everything works on latin1 strings — one char per byte — so
 * 8-bit header bytes pass through unchanged, and a header that needs nothing is returned as the
 * very same bytes.
 */

/** RFC 5322 §2.1.1: a line is at most 998 octets before its CRLF. */
export const MAX_LINE_OCTETS = 998;

/** RFC 5322 §3.6: fields that may appear at most once. Later copies are dropped; the first one wins. */
const SINGLE_INSTANCE = ['date', 'from', 'sender', 'reply-to', 'to', 'cc', 'bcc', 'message-id', 'in-reply-to', 'references', 'subject'];

const FIELD_START = /^[!-9;-~]+[ \t]*:/;
const LF = 0x0a;
const CR = 0x0d;

export interface FixupContext {
  /** relaybox's hostname: MAILER-DAEMON@hostname is the From of last resort (an empty MAIL FROM). */
  hostname: string;
  /** For a missing Message-ID, without brackets, e.g. `abc.42@relaybox.example.com`. */
  messageId: string;
  /** For a missing Date: when relaybox accepted the message. */
  date: Date;
  /** The envelope sender as it goes upstream (after `smtp.rewrite.envelope_from`): From when there is none. */
  envelopeFrom: string;
  /** `smtp.rewrite.header_from`; '' leaves the device's From alone. */
  headerFrom: string;
}

export interface HeaderSection {
  /** Where the header fields end. */
  fieldsEnd: number;
  /** Where the body starts: after the empty line, or at fieldsEnd when there is none. */
  bodyStart: number;
}

/**
 * Finds the end of the header section at the start of a message. Like Postfix's cleanup, the
 * first line that is neither a field nor a continuation ends it, so a message with no headers at
 * all (`echo hello | nc`) keeps its text as body. Returns null when `head` may not hold the whole
 * section yet; with `complete` the end of `head` is the end of the message.
 */
export function findHeaderSection(head: Buffer, complete: boolean): HeaderSection | null {
  let pos = 0;
  while (pos < head.length) {
    const lf = head.indexOf(LF, pos);
    const lineEnd = lf === -1 ? head.length : lf > pos && head[lf - 1] === CR ? lf - 1 : lf;
    if (lf === -1 && !complete) return null;
    if (lineEnd === pos && lf !== -1) return { fieldsEnd: pos, bodyStart: lf + 1 };
    const first = head[pos];
    const continuation = pos > 0 && (first === 0x20 || first === 0x09);
    if (!continuation && !FIELD_START.test(head.toString('latin1', pos, Math.min(lineEnd, pos + 1000)))) {
      return { fieldsEnd: pos, bodyStart: pos };
    }
    if (lf === -1) break;
    pos = lf + 1;
  }
  return complete ? { fieldsEnd: head.length, bodyStart: head.length } : null;
}

interface Field {
  /** Lower-cased name, for comparisons. */
  key: string;
  /** The whole field as written: name, colon, value, folds and line breaks. */
  text: string;
}

export interface FixedHeaders {
  /** Replaces `head[0, bodyStart)`; the very same bytes when nothing changed. */
  headers: Buffer;
  bodyStart: number;
  /** What was done, for the log: empty when the header was already fine. */
  changed: string[];
}

/**
 * Fixes the header section at the start of `head` (which may carry some body after it). The
 * caller sends `headers` followed by `head` from `bodyStart` on.
 */
export function fixHeaders(head: Buffer, ctx: FixupContext): FixedHeaders {
  const section = findHeaderSection(head, true)!;
  const original = head.subarray(0, section.bodyStart);
  const fields = splitFields(head.toString('latin1', 0, section.fieldsEnd));
  const changed: string[] = [];

  dropRepeatedFields(fields, changed);
  fixFrom(fields, ctx, changed);
  fixMessageId(fields, ctx, changed);
  if (!fields.some((f) => f.key === 'date')) {
    fields.push(field('Date', rfc5322Date(ctx.date)));
    changed.push('added Date');
  }
  if (fields.some((f) => /(^|[^\r])\n/.test(f.text)) || /^\n/.test(head.toString('latin1', section.fieldsEnd, section.bodyStart))) {
    changed.push('CRLF line endings in the header');
  }
  if (fields.some((f) => f.text.split('\n').some((line) => line.replace(/\r$/, '').length > MAX_LINE_OCTETS))) {
    changed.push(`folded header lines over ${MAX_LINE_OCTETS} octets`);
  }
  const bodyFollows = section.bodyStart < head.length;
  if (section.bodyStart === section.fieldsEnd && bodyFollows) changed.push('blank line inserted between header and body');

  if (changed.length === 0) return { headers: original, bodyStart: section.bodyStart, changed };
  // Every field ends with CRLF, also a last one that had no line break (a headers-only message).
  let text = fields.map((f) => foldField(crlf(f.text).replace(/(?<!\r\n)$/, '\r\n'))).join('');
  if (section.bodyStart > section.fieldsEnd || bodyFollows) text += '\r\n';
  return { headers: Buffer.from(text, 'latin1'), bodyStart: section.bodyStart, changed };
}

function splitFields(block: string): Field[] {
  const fields: Field[] = [];
  for (const line of block.match(/[^\n]*(\n|$)/g) ?? []) {
    if (line === '') continue;
    const last = fields.at(-1);
    if (last && /^[ \t]/.test(line)) last.text += line;
    else fields.push({ key: line.slice(0, line.indexOf(':')).trimEnd().toLowerCase(), text: line });
  }
  return fields;
}

function field(name: string, value: string): Field {
  return { key: name.toLowerCase(), text: `${name}: ${value}\r\n` };
}

/** The value as written after the colon: folds and line break included. */
function rawValue(f: Field): string {
  return f.text.slice(f.text.indexOf(':') + 1);
}

/** Unfolded and trimmed. */
function valueOf(f: Field): string {
  return rawValue(f).replace(/\r?\n/g, '').trim();
}

function dropRepeatedFields(fields: Field[], changed: string[]): void {
  const seen = new Set<string>();
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (!SINGLE_INSTANCE.includes(f.key)) continue;
    if (!seen.has(f.key)) {
      seen.add(f.key);
      continue;
    }
    const name = f.text.slice(0, f.text.indexOf(':')).trim();
    const note = `dropped repeated ${name}`;
    if (!changed.includes(note)) changed.push(note);
    fields.splice(i--, 1);
  }
}

function fixFrom(fields: Field[], ctx: FixupContext, changed: string[]): void {
  const index = fields.findIndex((f) => f.key === 'from');
  if (ctx.headerFrom) {
    const wanted = field('From', formatMailbox(ctx.headerFrom));
    if (index === -1) {
      fields.push(wanted);
      changed.push('added From (header_from)');
    } else if (addressOf(valueOf(fields[index]!)) !== addressOf(ctx.headerFrom)) {
      const device = fields[index]!;
      fields[index] = wanted;
      // Replies should still reach whoever the device claimed to be.
      if (fields.some((f) => f.key === 'reply-to')) {
        changed.push('From rewritten (header_from)');
      } else {
        fields.splice(index + 1, 0, { key: 'reply-to', text: `Reply-To:${rawValue(device)}` });
        changed.push('From rewritten (header_from), the device From kept in Reply-To');
      }
    }
    return;
  }
  if (index === -1) {
    fields.push(field('From', ctx.envelopeFrom || `MAILER-DAEMON@${ctx.hostname}`));
    changed.push('added From');
  }
}

function fixMessageId(fields: Field[], ctx: FixupContext, changed: string[]): void {
  const index = fields.findIndex((f) => f.key === 'message-id');
  const fresh = field('Message-ID', `<${ctx.messageId}>`);
  if (index === -1) {
    fields.push(fresh);
    changed.push('added Message-ID');
    return;
  }
  const value = valueOf(fields[index]!);
  if (/^<[^<>\s@]+@[^<>\s@]+>$/.test(value)) return;
  if (/^[^<>\s@]+@[^<>\s@]+$/.test(value)) {
    // The device's own id, only missing its brackets: keep it, so that replies still thread.
    fields[index] = field('Message-ID', `<${value}>`);
    changed.push('Message-ID put in angle brackets');
  } else {
    fields[index] = fresh;
    changed.push('replaced an invalid Message-ID');
  }
}

/** `Scanner <scan@example.com>` → `scan@example.com`, lower-cased, for comparing addresses. */
export function addressOf(mailbox: string): string {
  const angle = /<([^<>]*)>\s*$/.exec(mailbox);
  return (angle ? angle[1]! : mailbox.replace(/\([^()]*\)/g, '')).trim().toLowerCase();
}

/** A configured `Name <address>`: a non-ASCII display name is written as RFC 2047 encoded words. */
export function formatMailbox(mailbox: string): string {
  const m = /^(.*?)\s*<([^<>]+)>$/.exec(mailbox.trim());
  if (!m || !/[^\x00-\x7f]/.test(m[1]!)) return mailbox.trim();
  return `${encodeWords(m[1]!.replace(/^"(.*)"$/, '$1'), 'Q', 52)} <${m[2]}>`;
}

/** RFC 5322 date-time in UTC: `Tue, 02 Jan 2024 15:04:05 +0000`. */
export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, '+0000');
}

function crlf(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}

/**
 * Folds every line of a field that is longer than 998 octets: before a space or tab where there
 * is one (unfolding gives the same value back); where a line has no whitespace to fold at, it is
 * split with CRLF SP — unfolding then reads one extra space, the lesser harm than a `550 5.7.1`.
 * A split never falls inside a UTF-8 character.
 */
function foldField(text: string): string {
  const lines = text.split('\r\n');
  if (lines.every((line) => line.length <= MAX_LINE_OCTETS)) return text;
  const nameEnd = text.indexOf(':') + 1;
  return lines
    .map((line, n) => foldLine(line, n === 0 ? nameEnd + 1 : 1))
    .join('\r\n');
}

function foldLine(line: string, earliest: number): string {
  const out: string[] = [];
  let rest = line;
  while (rest.length > MAX_LINE_OCTETS) {
    let at = -1;
    for (let i = MAX_LINE_OCTETS; i >= earliest; i--) {
      if ((rest[i] === ' ' || rest[i] === '\t') && /[^ \t]/.test(rest.slice(0, i)) && /[^ \t]/.test(rest.slice(i))) {
        at = i;
        break;
      }
    }
    if (at !== -1) {
      out.push(rest.slice(0, at));
      rest = rest.slice(at);
    } else {
      let cut = MAX_LINE_OCTETS;
      while (cut > MAX_LINE_OCTETS - 3 && (rest.charCodeAt(cut) & 0xc0) === 0x80) cut--;
      out.push(rest.slice(0, cut));
      rest = ` ${rest.slice(cut)}`;
    }
    earliest = 1;
  }
  out.push(rest);
  return out.join('\r\n');
}
