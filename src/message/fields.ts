/**
 * A header field as fixups.ts handles it: the text as written, on latin1 strings (one char per
 * byte), so 8-bit bytes pass through unchanged and an untouched field is the very same bytes.
 */
export interface Field {
  /** Lower-cased name, for comparisons. */
  key: string;
  /** The whole field as written: name, colon, value, folds and line breaks. */
  text: string;
}

/** RFC 5322 §2.1.1: a line is at most 998 octets before its CRLF. */
export const MAX_LINE_OCTETS = 998;

export function field(name: string, value: string): Field {
  return { key: name.toLowerCase(), text: `${name}: ${value}\r\n` };
}

/** A field named `name` with another field's value as written (folds included). */
export function renamed(name: string, from: Field): Field {
  return { key: name.toLowerCase(), text: `${name}:${rawValue(from)}` };
}

/** The value as written after the colon: folds and line break included. */
export function rawValue(f: Field): string {
  return f.text.slice(f.text.indexOf(':') + 1);
}

/** Unfolded and trimmed. */
export function valueOf(f: Field): string {
  return rawValue(f).replace(/\r?\n/g, '').trim();
}

/** The field's name as the device wrote it, e.g. `TO`. */
export function nameOf(f: Field): string {
  return f.text.slice(0, f.text.indexOf(':')).trim();
}

/** 8-bit header bytes (a latin1 string) as text: UTF-8 when they are valid UTF-8, else Latin-1. */
export function headerText(latin1: string): string {
  if (!/[\x80-\xff]/.test(latin1)) return latin1;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(latin1, 'latin1'));
  } catch {
    return latin1;
  }
}
