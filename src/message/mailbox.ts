import { encodeWord } from 'nodemailer/lib/mime-funcs';
import { headerText } from './fields.js';

/**
 * A strict reading of RFC 5322 §3.4 (mailbox, mailbox-list, addr-spec) over an unfolded header
 * value, as Gmail's "not RFC 5322 compliant" check reads it. nodemailer's addressparser is
 * lenient on purpose (it finds what a writer meant), so it cannot tell valid from invalid.
 * 8-bit bytes count as text (RFC 6532); obsolete forms with spaces inside an address do not.
 */

interface Token {
  kind: 'atom' | 'quoted' | 'literal' | 'special';
  text: string;
}

/** atext (§3.2.3) plus 8-bit; dots are read into atoms and checked where dot-atoms are due. */
const ATOM_CHAR = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\x80-\xff]/;
const QTEXT = /[!#-[\]-~\x80-\xff \t]/;
const CTEXT = /[!-'*-[\]-~\x80-\xff \t]/;
const DTEXT = /[!-Z^-~ \t]/;
const QUOTED_PAIR = /[!-~ \t]/;

/** The tokens of a value, comments and whitespace left out; null where it breaks the grammar. */
function lex(value: string): Token[] | null {
  const tokens: Token[] = [];
  let i = 0;
  while (i < value.length) {
    const c = value[i]!;
    let end: number;
    if (c === ' ' || c === '\t') end = i + 1;
    else if (c === '(') end = commentEnd(value, i);
    else if (c === '"') end = delimitedEnd(value, i, '"', QTEXT);
    else if (c === '[') end = delimitedEnd(value, i, ']', DTEXT);
    else if ('<>:;@,'.includes(c)) end = i + 1;
    else for (end = i; end < value.length && ATOM_CHAR.test(value[end]!); end++);
    if (end <= i) return null;
    const text = value.slice(i, end);
    if (c === '"') tokens.push({ kind: 'quoted', text });
    else if (c === '[') tokens.push({ kind: 'literal', text });
    else if ('<>:;@,'.includes(c)) tokens.push({ kind: 'special', text });
    else if (c !== ' ' && c !== '\t' && c !== '(') tokens.push({ kind: 'atom', text });
    i = end;
  }
  return tokens;
}

/** Just past the closing `close`, or -1. */
function delimitedEnd(value: string, start: number, close: string, allowed: RegExp): number {
  for (let i = start + 1; i < value.length; i++) {
    const c = value[i]!;
    if (c === close) return i + 1;
    if (c === '\\' && close === '"') {
      if (!QUOTED_PAIR.test(value[++i] ?? '')) return -1;
    } else if (!allowed.test(c)) return -1;
  }
  return -1;
}

/** Just past a (possibly nested) comment, or -1. */
function commentEnd(value: string, start: number): number {
  let depth = 0;
  for (let i = start; i < value.length; i++) {
    const c = value[i]!;
    if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
    else if (c === '\\') {
      if (!QUOTED_PAIR.test(value[++i] ?? '')) return -1;
    } else if (!CTEXT.test(c)) return -1;
  }
  return -1;
}

const isDotAtom = (t: Token | undefined) => t?.kind === 'atom' && !/^\.|\.$|\.\./.test(t.text);
const isSpecial = (t: Token | undefined, c: string) => t?.kind === 'special' && t.text === c;

/** tokens[start, start + 3) is local-part "@" domain. */
function isAddrSpecAt(tokens: Token[], start: number): boolean {
  const [local, at, domain] = [tokens[start], tokens[start + 1], tokens[start + 2]];
  return (isDotAtom(local) || local?.kind === 'quoted') && isSpecial(at, '@') && (isDotAtom(domain) || domain?.kind === 'literal');
}

/** addr-spec, or [display-name] "<" addr-spec ">". */
function isMailbox(tokens: Token[]): boolean {
  if (tokens.length === 3) return isAddrSpecAt(tokens, 0);
  const open = tokens.length - 5;
  if (open < 0 || !isSpecial(tokens[open], '<') || !isSpecial(tokens.at(-1), '>') || !isAddrSpecAt(tokens, open + 1)) return false;
  const phrase = tokens.slice(0, open);
  // obs-phrase allows dots after the first word, not before it.
  return phrase.every((t) => t.kind === 'atom' || t.kind === 'quoted') && !phrase[0]?.text.startsWith('.');
}

/** How many mailboxes a mailbox-list holds; null when it is not one (no address, a group, junk). */
export function mailboxCount(value: string): number | null {
  const tokens = lex(value);
  if (!tokens || tokens.length === 0) return null;
  const mailboxes: Token[][] = [[]];
  for (const t of tokens) {
    if (isSpecial(t, ',')) mailboxes.push([]);
    else mailboxes.at(-1)!.push(t);
  }
  return mailboxes.every(isMailbox) ? mailboxes.length : null;
}

/** `local@domain`, nothing around it. */
export function isAddrSpec(address: string): boolean {
  const tokens = lex(address);
  return tokens?.length === 3 && isAddrSpecAt(tokens, 0) && !/^[ \t]|[ \t]$/.test(address);
}

const ENCODED_WORD = /^=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=$/;

/**
 * A device's text as a display-name: ASCII in quotes (specials such as a comma are then plain
 * text), 8-bit text as RFC 2047 encoded words, and a name that already is encoded words as it is
 * (in quotes a reader would show them raw).
 */
export function displayName(latin1: string): string {
  const name = headerText(latin1).replace(/[\x00-\x1f\x7f]+/g, ' ').replace(/\s+/g, ' ').trim();
  if (/[^\x00-\x7f]/.test(name)) return encodeWord(name, 'Q', 52);
  const tokens = lex(name);
  if (tokens?.every((t) => t.kind === 'atom' || t.kind === 'quoted') && tokens.some((t) => ENCODED_WORD.test(t.text))) return name;
  return `"${name.replace(/["\\]/g, '\\$&')}"`;
}

/** A value that is one quoted-string, unquoted; anything else as it is. */
export function unquoted(text: string): string {
  const tokens = lex(text);
  if (tokens?.length !== 1 || tokens[0]!.kind !== 'quoted' || tokens[0]!.text !== text.trim()) return text.trim();
  return tokens[0]!.text.slice(1, -1).replace(/\\(.)/g, '$1');
}
