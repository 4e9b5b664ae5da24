import { isAscii } from 'node:buffer';
import addressparser, { type Address } from 'nodemailer/lib/addressparser';
import { parseHeaderValue, quoteString } from 'nodemailer/lib/mime-funcs';

/** A header field that has no 7-bit form (an address with a non-ASCII local part needs SMTPUTF8). */
export class SevenBitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SevenBitError';
  }
}

const ADDRESS_FIELDS = new Set(['from', 'sender', 'reply-to', 'to', 'cc', 'bcc', 'resent-from', 'resent-sender', 'resent-to', 'resent-cc', 'resent-bcc', 'disposition-notification-to']);
const PARAMETER_FIELDS = new Set(['content-type', 'content-disposition']);
const NON_ASCII = /[^\x00-\x7f]/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PHRASE_SPECIALS = /[()<>[\]:;@\\,."]/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * One header field (its raw bytes, folds included, without the final CRLF) in 7-bit form: as it
 * is when it is ASCII already; else its 8-bit text as RFC 2047 encoded-words (display names,
 * unstructured fields like Subject) or RFC 2231 parameters (Content-Type, Content-Disposition).
 * The bytes keep their charset: UTF-8 when they are valid UTF-8, else `fallbackCharset` (the
 * part's declared charset, e.g. a scanner's Shift_JIS), else `unknown-8bit` (RFC 1428).
 */
export function sevenBitField(field: Buffer, fallbackCharset: string | undefined): Buffer {
  if (isAscii(field)) return field;
  // latin1 maps each byte to one character and back: parsers see the bytes, untouched.
  const text = field.toString('latin1');
  const colon = text.indexOf(':');
  if (colon <= 0) throw new SevenBitError(`a header line without a name holds 8-bit bytes: ${text.slice(0, 60)}`);
  const name = text.slice(0, colon);
  const value = text.slice(colon + 1).replace(/\r\n(?=[ \t])/g, '').trim();
  const charset = charsetOf(field, fallbackCharset);
  const key = name.trim().toLowerCase();
  let encoded: string;
  if (ADDRESS_FIELDS.has(key)) encoded = addressList(addressparser(value), charset, name);
  else if (PARAMETER_FIELDS.has(key)) encoded = parameters(value, charset);
  else encoded = encodedWords(Buffer.from(value, 'latin1'), charset).join(' ');
  return Buffer.from(fold(`${name}: ${encoded}`), 'latin1');
}

function charsetOf(bytes: Buffer, fallback: string | undefined): string {
  try {
    utf8.decode(bytes);
    return 'utf-8';
  } catch {
    return fallback && TOKEN.test(fallback) ? fallback.toLowerCase() : 'unknown-8bit';
  }
}

/** RFC 2047 B-encoded words of at most 75 characters, never splitting a UTF-8 character. */
export function encodedWords(bytes: Buffer, charset: string): string[] {
  const perWord = Math.max(3, Math.floor((75 - 7 - charset.length) / 4) * 3);
  const words: string[] = [];
  for (let start = 0; start < bytes.length; ) {
    let end = Math.min(start + perWord, bytes.length);
    if (charset === 'utf-8') while (end < bytes.length && end > start + 1 && (bytes[end]! & 0xc0) === 0x80) end--;
    words.push(`=?${charset}?B?${bytes.subarray(start, end).toString('base64')}?=`);
    start = end;
  }
  return words;
}

function phrase(name: string, charset: string): string {
  if (!name) return '';
  if (NON_ASCII.test(name)) return encodedWords(Buffer.from(name, 'latin1'), charset).join(' ');
  return PHRASE_SPECIALS.test(name) ? quoteString(name) : name;
}

function addressList(list: Address[], charset: string, field: string): string {
  const one = (a: Address): string => {
    if (a.group) return `${phrase(a.name, charset)}: ${a.group.map(one).join(', ')};`;
    if (NON_ASCII.test(a.address)) {
      throw new SevenBitError(`the ${field} header holds an address with 8-bit bytes (${Buffer.from(a.address, 'latin1').toString('utf8')}), which only an upstream with SMTPUTF8 can take`);
    }
    const name = phrase(a.name, charset);
    return name ? `${name} <${a.address}>` : `<${a.address}>`;
  };
  return list.map(one).join(', ');
}

/** `text/plain; name="Bericht ü.pdf"` → `text/plain; name*=utf-8''Bericht%20%C3%BC.pdf` (RFC 2231). */
function parameters(value: string, charset: string): string {
  const parsed = parseHeaderValue(value);
  let out = parsed.value;
  for (const [key, raw] of Object.entries(parsed.params)) {
    // A parameter the parser decoded from RFC 2231 already is text, not bytes.
    const bytes = /[^\x00-\xff]/.test(raw) ? Buffer.from(raw, 'utf8') : Buffer.from(raw, 'latin1');
    if (isAscii(bytes)) out += `; ${key}=${TOKEN.test(raw) ? raw : quoteString(raw)}`;
    else out += `; ${key}*=${/[^\x00-\xff]/.test(raw) ? 'utf-8' : charset}''${percentEncoded(bytes)}`;
  }
  return out;
}

function percentEncoded(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) {
    const c = String.fromCharCode(byte);
    out += byte < 0x80 && TOKEN.test(c) && c !== '%' && c !== "'" && c !== '*' ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Folds at spaces so that no line passes 76 characters where a space allows it. */
function fold(line: string): string {
  if (line.length <= 76) return line;
  const words = line.split(' ');
  let out = words[0]!;
  let column = out.length;
  for (const word of words.slice(1)) {
    if (word && column + 1 + word.length > 76) {
      out += `\r\n ${word}`;
      column = 1 + word.length;
    } else {
      out += ` ${word}`;
      column += 1 + word.length;
    }
  }
  return out;
}
