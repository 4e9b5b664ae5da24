import { encodeWord } from 'nodemailer/lib/mime-funcs';
import { MAX_LINE_OCTETS } from './fields.js';

/** Fields holding a list of addresses: CRLF SP may go after any comma between two of them. */
const ADDRESS_FIELDS = new Set(['from', 'sender', 'reply-to', 'to', 'cc', 'bcc', 'resent-from', 'resent-sender', 'resent-to', 'resent-cc', 'resent-bcc', 'disposition-notification-to']);

/** Free text (RFC 5322 §3.6.5, §3.6.8; Content-Description, Thread-Topic): RFC 2047 applies. */
function isUnstructured(key: string): boolean {
  return ['subject', 'comments', 'content-description', 'thread-topic'].includes(key) || key.startsWith('x-');
}

export interface FoldedField {
  text: string;
  /** Words too long for any line were written as RFC 2047 encoded words. */
  encoded: boolean;
}

/**
 * Folds the lines of a field (CRLF-terminated) longer than 998 octets, or returns null when none
 * is. A fold goes before a space or tab (unfolding then gives the same value), or in an address
 * field after a comma between addresses (legal FWS). Where neither exists, a word of free text is
 * RFC 2047 encoded (decoders join adjacent encoded words, so the text reads the same); anything
 * else — a single structured token over 998 octets, which no valid address or Message-ID is —
 * is split with CRLF SP as Postfix's smtp_line_length_limit does: unfolding reads one space more,
 * and nothing is lost. A split never falls inside a UTF-8 character.
 */
export function foldField(text: string, key: string): FoldedField | null {
  const lines = text.split('\r\n');
  if (lines.every((line) => line.length <= MAX_LINE_OCTETS)) return null;
  const valueStart = text.indexOf(':') + 1;
  const commas = ADDRESS_FIELDS.has(key) ? topLevelCommas(lines) : [];
  let encoded = false;
  const folded = lines.map((line, n) => {
    if (line.length <= MAX_LINE_OCTETS) return line;
    // `Subject:` alone on a line is legal, but some readers then see an empty subject.
    const earliest = n === 0 ? valueStart + 1 : 1;
    if (isUnstructured(key)) {
      const words = encodeLongWords(line, n === 0 ? valueStart : 0);
      encoded ||= words !== line;
      line = words;
    }
    return foldLine(line, earliest, commas[n]);
  });
  return { text: folded.join('\r\n'), encoded };
}

const isSpace = (c: string | undefined) => c === ' ' || c === '\t';

function foldLine(line: string, earliest: number, commas: Set<number> = new Set()): string {
  const pieces: string[] = [];
  let pos = 0;
  /** ' ' when the piece follows an inserted fold. */
  let lead = '';
  let lastText = line.length - 1;
  while (lastText >= 0 && isSpace(line[lastText])) lastText--;
  while (lead.length + line.length - pos > MAX_LINE_OCTETS) {
    const limit = pos + MAX_LINE_OCTETS - lead.length;
    // Each line keeps some text: a fold never leaves a line of only whitespace.
    let firstText = pos;
    while (isSpace(line[firstText])) firstText++;
    const from = Math.max(pieces.length === 0 ? earliest : pos + 1, firstText + 1);
    let end = -1;
    let insert = false;
    for (let i = Math.min(limit, lastText); i >= from; i--) {
      if (isSpace(line[i])) {
        end = i;
        break;
      }
      if (commas.has(i - 1)) {
        [end, insert] = [i, true];
        break;
      }
    }
    if (end === -1) {
      end = limit;
      while (end > limit - 3 && (line.charCodeAt(end) & 0xc0) === 0x80) end--;
      insert = true;
    }
    pieces.push(lead + line.slice(pos, end));
    pos = end;
    lead = insert ? ' ' : '';
  }
  pieces.push(lead + line.slice(pos));
  return pieces.join('\r\n');
}

/** Per line, where its commas outside quoted strings, comments and angle brackets are. */
function topLevelCommas(lines: string[]): Set<number>[] {
  let quoted = false;
  let comment = 0;
  let angle = false;
  return lines.map((line) => {
    const commas = new Set<number>();
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (c === '\\' && (quoted || comment > 0)) i++;
      else if (quoted) quoted = c !== '"';
      else if (c === '(') comment++;
      else if (comment > 0) comment -= c === ')' ? 1 : 0;
      else if (c === '"') quoted = true;
      else if (c === '<' || c === '>') angle = c === '<';
      else if (c === ',' && !angle) commas.add(i);
    }
    return commas;
  });
}

/**
 * Writes each word of free text that could not fit on a line of its own as UTF-8 encoded words
 * separated by spaces. A word that is not UTF-8 (its charset unknown) is left to be split.
 */
function encodeLongWords(line: string, valueStart: number): string {
  const value = line.slice(valueStart);
  const firstWord = value.search(/[^ \t]/);
  return (
    line.slice(0, valueStart) +
    value.replace(/[^ \t]+/g, (word, at: number) => {
      // The first word of a field's first line cannot move; any other can start a continuation line.
      const room = at === firstWord ? MAX_LINE_OCTETS - valueStart - at : MAX_LINE_OCTETS - 1;
      if (word.length <= room) return word;
      try {
        return encodeWord(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(word, 'latin1')), 'Q', 75);
      } catch {
        return word;
      }
    })
  );
}
