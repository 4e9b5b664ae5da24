import { isAscii } from 'node:buffer';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp';
import { parseHeaderValue } from 'nodemailer/lib/mime-funcs';
import { chain } from '../streams.js';
import { HEADER_LIMIT_BYTES } from './fixupsStream.js';
import { sevenBitField } from './sevenBitHeaders.js';

export { SevenBitError } from './sevenBitHeaders.js';

const LF = 0x0a;
const CR = 0x0d;
const CRLF = Buffer.from('\r\n');
const SOFT_BREAK = Buffer.from('=\r\n');
const NOTHING = Buffer.alloc(0);
/** A body line longer than this goes out in pieces (fixups.ts splits lines past 998 octets anyway). */
const LONG_LINE_BYTES = 8 * 1024;
/** Base64 lines of 76 characters. */
const BASE64_LINE_BYTES = 57;

/** How the body of the part being read goes out. */
type BodyMode = 'pass' | 'quoted-printable' | 'base64';

/**
 * The message in 7-bit form, for an upstream that does not offer 8BITMIME (RFC 6152 §3 leaves
 * the sender to convert). Streams line by line, holding one part's header section at a time:
 * - every leaf part sent as `8bit`, `binary`, `7bit` or without Content-Transfer-Encoding goes
 *   quoted-printable when it is text and base64 otherwise (which of its lines are 8-bit is only
 *   known after they went by, so the whole part is encoded; its text stays the same once decoded);
 * - multipart and message/rfc822 parts are walked into (their boundaries kept as they are);
 * - header fields with 8-bit bytes become RFC 2047 encoded-words or RFC 2231 parameters
 *   (sevenBitHeaders.ts); an address with a non-ASCII local part cannot, and fails the stream;
 * - parts already in quoted-printable or base64, preambles and epilogues pass, a stray 8-bit
 *   byte in them written as `?` (they are 7-bit by definition; readers ignore the latter two).
 * Runs only for 8-bit mail going to a 7-bit upstream, before DKIM signing.
 */
export function toSevenBit(message: Readable): Readable {
  return chain(message, new SevenBitEncoder());
}

class SevenBitEncoder extends Transform {
  /** The line read so far, when its LF has not come yet. */
  private carry: Buffer[] = [];
  private carryBytes = 0;
  /** Part of the current line went out already (a very long line): what follows continues it. */
  private midLine = false;
  /** Lines of the header section being read; null while in a body. */
  private header: Buffer[] | null = [];
  private headerBytes = 0;
  private topLevel = true;
  private mode: BodyMode = 'pass';
  /** `--boundary` of each multipart we are inside, innermost last. */
  private readonly boundaries: Buffer[] = [];
  /** Base64: bytes not yet making a full line, and whether a line break is owed before the next line. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private owesLineBreak = false;
  private out: Buffer[] = [];

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      let start = 0;
      for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, start)) {
        this.lineEnds(chunk.subarray(start, lf));
        start = lf + 1;
      }
      if (start < chunk.length) this.lineGoesOn(chunk.subarray(start));
    } catch (err) {
      return callback(err as Error);
    }
    callback(null, this.collected());
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.carryBytes > 0) this.line(Buffer.concat(this.takeCarry()), 'eof');
      if (this.header?.length) this.endHeader(false);
      this.endPart();
    } catch (err) {
      return callback(err as Error);
    }
    callback(null, this.collected());
  }

  private collected(): Buffer {
    const out = Buffer.concat(this.out);
    this.out = [];
    return out;
  }

  private lineEnds(last: Buffer): void {
    let line = this.carryBytes > 0 ? Buffer.concat([...this.takeCarry(), last]) : last;
    if (line[line.length - 1] === CR) line = line.subarray(0, -1);
    this.line(line, 'eol');
  }

  /**
   * No LF yet. Held, but never much of it: past HEADER_LIMIT_BYTES a header section is taken as
   * ended, and past LONG_LINE_BYTES a body line goes out in pieces (no delimiter is that long).
   */
  private lineGoesOn(piece: Buffer): void {
    this.carry.push(Buffer.from(piece));
    this.carryBytes += piece.length;
    if (this.header && this.headerBytes + this.carryBytes > HEADER_LIMIT_BYTES) this.endHeader(false);
    if (this.header || this.carryBytes <= LONG_LINE_BYTES) return;
    const held = Buffer.concat(this.takeCarry());
    // A CR may be the first half of the line's CRLF: it waits for the next piece.
    const keep = held[held.length - 1] === CR ? 1 : 0;
    if (keep) this.lineGoesOn(held.subarray(held.length - 1));
    this.line(held.subarray(0, held.length - keep), 'partial');
  }

  private takeCarry(): Buffer[] {
    const carry = this.carry;
    this.carry = [];
    this.carryBytes = 0;
    return carry;
  }

  private line(bytes: Buffer, end: 'eol' | 'partial' | 'eof'): void {
    const continued = this.midLine;
    this.midLine = end === 'partial';
    if (this.header) {
      if (bytes.length === 0 && end === 'eol') return this.endHeader(true);
      const delimiter = !continued && this.matchDelimiter(bytes);
      if (!delimiter) {
        this.header.push(Buffer.from(bytes));
        this.headerBytes += bytes.length;
        if (end === 'eof' || this.headerBytes > HEADER_LIMIT_BYTES) this.endHeader(false);
        return;
      }
      this.endHeader(true); // a part with no blank line before the next delimiter: an empty body
    }
    if (!continued && this.delimiter(bytes)) return;
    const lineBreak = end === 'eol' ? CRLF : end === 'partial' && this.mode === 'quoted-printable' ? SOFT_BREAK : NOTHING;
    if (this.mode === 'quoted-printable') this.out.push(Buffer.from(qpWrap(qpEncode(bytes), 76), 'latin1'), lineBreak);
    else if (this.mode === 'base64') this.base64Line(bytes, continued, end === 'eol');
    else this.out.push(masked(bytes), lineBreak);
  }

  /** Which enclosing multipart's boundary `bytes` is, and whether it closes it. */
  private matchDelimiter(bytes: Buffer): { depth: number; closes: boolean } | null {
    if (bytes[0] !== 0x2d || bytes[1] !== 0x2d || this.boundaries.length === 0) return null;
    for (let i = this.boundaries.length - 1; i >= 0; i--) {
      const boundary = this.boundaries[i]!;
      if (!bytes.subarray(0, boundary.length).equals(boundary)) continue;
      const rest = bytes.subarray(boundary.length).toString('latin1').trimEnd();
      if (rest === '' || rest === '--') return { depth: i, closes: rest === '--' };
    }
    return null;
  }

  /** A boundary line of an enclosing multipart ends the part being read; true if `bytes` was one. */
  private delimiter(bytes: Buffer): boolean {
    const match = this.matchDelimiter(bytes);
    if (!match) return false;
    this.endPart();
    this.out.push(bytes, CRLF);
    this.boundaries.length = match.closes ? match.depth : match.depth + 1;
    // After the closing delimiter comes the epilogue of that multipart; after an opening one, a part.
    this.header = match.closes ? null : [];
    this.mode = 'pass';
    return true;
  }

  private endHeader(blankLine: boolean): void {
    const fields = unfold(this.header!);
    this.header = null;
    this.headerBytes = 0;
    const find = (name: string) => fields.findIndex((f) => fieldName(f) === name);
    const typeAt = find('content-type');
    const cteAt = find('content-transfer-encoding');
    const type = typeAt >= 0 ? parseHeaderValue(fieldValue(fields[typeAt]!)) : { value: 'text/plain', params: {} as Record<string, string> };
    const mediaType = type.value.toLowerCase();
    const cte = cteAt >= 0 ? fieldValue(fields[cteAt]!).trim().toLowerCase() : '7bit';
    const unencoded = cte === '7bit' || cte === '8bit' || cte === 'binary';

    let newCte: string | null = null;
    let nested = false;
    this.mode = 'pass';
    if (mediaType.startsWith('multipart/') && type.params.boundary) {
      this.boundaries.push(Buffer.from(`--${type.params.boundary}`, 'latin1'));
      if (cte !== '7bit') newCte = '7bit';
    } else if (mediaType === 'message/rfc822') {
      nested = true; // its own header section follows
      if (cte !== '7bit') newCte = '7bit';
    } else if (unencoded) {
      this.mode = mediaType.startsWith('text/') || mediaType === '' ? 'quoted-printable' : 'base64';
      newCte = this.mode;
    }

    const charset = type.params.charset;
    for (const [i, field] of fields.entries()) {
      if (i === cteAt && newCte) continue;
      this.out.push(sevenBitField(field, charset), CRLF);
    }
    if (newCte) {
      if (this.topLevel && find('mime-version') < 0) this.out.push(Buffer.from('MIME-Version: 1.0\r\n'));
      this.out.push(Buffer.from(`Content-Transfer-Encoding: ${newCte}\r\n`));
    }
    if (blankLine) this.out.push(CRLF);
    this.topLevel = false;
    if (nested) this.header = [];
  }

  private base64Line(bytes: Buffer, continued: boolean, eol: boolean): void {
    if (this.owesLineBreak && !continued) this.addPending(CRLF);
    this.addPending(bytes);
    this.owesLineBreak = eol;
    if (this.pendingBytes < BASE64_LINE_BYTES) return;
    const all = Buffer.concat(this.pending);
    const whole = all.length - (all.length % BASE64_LINE_BYTES);
    for (let at = 0; at < whole; at += BASE64_LINE_BYTES) this.out.push(Buffer.from(all.subarray(at, at + BASE64_LINE_BYTES).toString('base64')), CRLF);
    this.pending = whole < all.length ? [all.subarray(whole)] : [];
    this.pendingBytes = all.length - whole;
  }

  private addPending(bytes: Buffer): void {
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
  }

  /** The part being read ends (a delimiter follows, or the message ends): the rest of its base64 goes out. */
  private endPart(): void {
    if (this.pendingBytes > 0) this.out.push(Buffer.from(Buffer.concat(this.pending).toString('base64')), CRLF);
    this.pending = [];
    this.pendingBytes = 0;
    this.owesLineBreak = false;
  }
}

/** Header lines → one Buffer per field, its folds (CRLF before a space or tab) kept. */
function unfold(lines: Buffer[]): Buffer[] {
  const fields: Buffer[][] = [];
  for (const line of lines) {
    if ((line[0] === 0x20 || line[0] === 0x09) && fields.length > 0) fields[fields.length - 1]!.push(CRLF, line);
    else fields.push([line]);
  }
  return fields.map((parts) => Buffer.concat(parts));
}

function fieldName(field: Buffer): string {
  const colon = field.indexOf(0x3a);
  return colon < 0 ? '' : field.subarray(0, colon).toString('latin1').trim().toLowerCase();
}

function fieldValue(field: Buffer): string {
  return field.subarray(field.indexOf(0x3a) + 1).toString('latin1').replace(/\r\n(?=[ \t])/g, '');
}

/** Bytes over 127 as `?`: for text that must be 7-bit and has no encoding to carry them. */
function masked(bytes: Buffer): Buffer {
  if (isAscii(bytes)) return bytes;
  return Buffer.from(bytes.map((b) => (b > 0x7f ? 0x3f : b)));
}
