import { fixDate } from './date.js';
import { MAX_LINE_OCTETS, field, nameOf, valueOf, type Field } from './fields.js';
import { foldField } from './fold.js';
import { fixFrom, type FromContext } from './from.js';

/**
 * RFC 5322 fix-ups for mail from sloppy devices (REFERENCE.md "Message fix-ups before relaying"):
 * Google's relay answers `550 5.7.1` to a missing Message-ID, a missing, repeated or invalid From
 * and repeated single-instance headers. Everything works on latin1 strings — one char per byte —
 * so 8-bit header bytes pass through unchanged, and a header that needs nothing is returned as
 * the very same bytes. The jobs live in from.ts, date.ts and fold.ts.
 */

export { MAX_LINE_OCTETS } from './fields.js';
export { rfc5322Date } from './date.js';
export { addressOf, formatMailbox } from './from.js';

/** RFC 5322 §3.6: fields that may appear at most once. Later copies are dropped; the first one wins. */
const SINGLE_INSTANCE = ['date', 'from', 'sender', 'reply-to', 'to', 'cc', 'bcc', 'message-id', 'in-reply-to', 'references', 'subject'];

const FIELD_START = /^[!-9;-~]+[ \t]*:/;
const LF = 0x0a;
const CR = 0x0d;

export interface FixupContext extends FromContext {
  /** For a missing Message-ID, without brackets, e.g. `abc.42@relaybox.example.com`. */
  messageId: string;
  /** For a missing or malformed Date: when relaybox accepted the message. */
  date: Date;
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
  fixDate(fields, ctx.date, changed);
  if (fields.some((f) => /(^|[^\r])\n/.test(f.text)) || /^\n/.test(head.toString('latin1', section.fieldsEnd, section.bodyStart))) {
    changed.push('CRLF line endings in the header');
  }
  const texts = fields.map((f) => crlf(f.text).replace(/(?<!\r\n)$/, '\r\n'));
  const folded = texts.map((text, n) => foldField(text, fields[n]!.key));
  if (folded.some((f) => f !== null)) changed.push(`folded header lines over ${MAX_LINE_OCTETS} octets`);
  if (folded.some((f) => f?.encoded)) changed.push('RFC 2047-encoded header words too long for a line');
  const bodyFollows = section.bodyStart < head.length;
  if (section.bodyStart === section.fieldsEnd && bodyFollows) changed.push('blank line inserted between header and body');

  if (changed.length === 0) return { headers: original, bodyStart: section.bodyStart, changed };
  // Every field ends with CRLF, also a last one that had no line break (a headers-only message).
  let text = texts.map((t, n) => folded[n]?.text ?? t).join('');
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

function dropRepeatedFields(fields: Field[], changed: string[]): void {
  const seen = new Set<string>();
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (!SINGLE_INSTANCE.includes(f.key)) continue;
    if (!seen.has(f.key)) {
      seen.add(f.key);
      continue;
    }
    const note = `dropped repeated ${nameOf(f)}`;
    if (!changed.includes(note)) changed.push(note);
    fields.splice(i--, 1);
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
  // An id too long for one line could only be split, and a split id is no id.
  const fits = value.length <= MAX_LINE_OCTETS - 'Message-ID: <>'.length;
  if (fits && /^<[^<>\s@]+@[^<>\s@]+>$/.test(value)) return;
  if (fits && /^[^<>\s@]+@[^<>\s@]+$/.test(value)) {
    // The device's own id, only missing its brackets: keep it, so that replies still thread.
    fields[index] = field('Message-ID', `<${value}>`);
    changed.push('Message-ID put in angle brackets');
  } else {
    fields[index] = fresh;
    changed.push('replaced an invalid Message-ID');
  }
}

function crlf(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}
