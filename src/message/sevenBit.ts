import { isAscii } from 'node:buffer';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp';
import { parseHeaderValue } from 'nodemailer/lib/mime-funcs';
import { chain } from '../streams.js';
import { sevenBitField } from './sevenBitHeaders.js';

export { SevenBitError } from './sevenBitHeaders.js';

const LF = 0x0a;
const CR = 0x0d;
const CRLF = Buffer.from('\r\n');
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
  private carry: Buffer | null = null;
  /** Lines of the header section being read; null while in a body. */
  private header: Buffer[] | null = [];
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
    const data = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    let start = 0;
    try {
      for (let lf = data.indexOf(LF); lf !== -1; lf = data.indexOf(LF, start)) {
        const end = lf > start && data[lf - 1] === CR ? lf - 1 : lf;
        this.line(data.subarray(start, end), true);
        start = lf + 1;
      }
    } catch (err) {
      return callback(err as Error);
    }
    this.carry = start < data.length ? Buffer.from(data.subarray(start)) : null;
    callback(null, this.collected());
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.carry) this.line(this.carry, false);
      this.carry = null;
      if (this.header) this.endHeader(false);
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

  private line(bytes: Buffer, eol: boolean): void {
    if (this.header) {
      if (bytes.length === 0) return this.endHeader(true);
      this.header.push(Buffer.from(bytes));
      return;
    }
    if (this.delimiter(bytes)) return;
    const end = eol ? CRLF : Buffer.alloc(0);
    if (this.mode === 'quoted-printable') this.out.push(Buffer.from(qpWrap(qpEncode(bytes), 76), 'latin1'), end);
    else if (this.mode === 'base64') this.base64Line(bytes);
    else this.out.push(masked(bytes), end);
  }

  /** A boundary line of an enclosing multipart ends the part being read; true if `bytes` was one. */
  private delimiter(bytes: Buffer): boolean {
    if (bytes[0] !== 0x2d || bytes[1] !== 0x2d || this.boundaries.length === 0) return false;
    for (let i = this.boundaries.length - 1; i >= 0; i--) {
      const boundary = this.boundaries[i]!;
      if (!bytes.subarray(0, boundary.length).equals(boundary)) continue;
      const rest = bytes.subarray(boundary.length).toString('latin1').trimEnd();
      if (rest !== '' && rest !== '--') continue;
      this.endPart();
      this.out.push(bytes, CRLF);
      this.boundaries.length = rest === '--' ? i : i + 1;
      // After the closing delimiter comes the epilogue of that multipart; after an opening one, a part.
      this.header = rest === '--' ? null : [];
      this.mode = 'pass';
      return true;
    }
    return false;
  }

  private endHeader(blankLine: boolean): void {
    const fields = unfold(this.header!);
    this.header = null;
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

  private base64Line(bytes: Buffer): void {
    if (this.owesLineBreak) this.addPending(CRLF);
    this.addPending(bytes);
    this.owesLineBreak = true;
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
