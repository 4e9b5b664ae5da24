import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { chain } from '../streams.js';
import { findHeaderSection, fixHeaders, MAX_LINE_OCTETS, type FixupContext } from './fixups.js';

/**
 * The most of a message held to find its header section. A bigger header section is no device's
 * mail (a 1.9 MB junk line has been seen): it streams on with only its long lines folded.
 */
export const HEADER_LIMIT_BYTES = 256 * 1024;

export interface StreamFixupContext extends FixupContext {
  /** Told what was changed (once for the header, once if body lines were split); never called for a message left as it is. */
  onFix?: (changed: string[]) => void;
}

/**
 * The message as it should go upstream: the header section fixed (see fixHeaders), body lines
 * over 998 octets split. Streams: only the header section (at most 256 KiB) is held; the body
 * goes through chunk by chunk. A message that needs nothing comes out byte for byte as it went
 * in. Bodies are not converted otherwise: bare LFs were made CRLF at ingress, and 8-bit bodies
 * from devices that never announced 8BITMIME are passed as they are — every upstream relaybox
 * targets (Gmail, M365, the providers) takes 8-bit data.
 */
export function applyFixups(raw: Readable, ctx: StreamFixupContext): Readable {
  // An error of the source (the spool reader) fails the output; a consumer that gives up closes it.
  return chain(raw, new MessageFixer(ctx));
}

class MessageFixer extends Transform {
  private head: Buffer[] | null = [];
  private headBytes = 0;
  private headerTooBig = false;
  private readonly body = new LongLineBreaker();

  constructor(private readonly ctx: StreamFixupContext) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.headerTooBig) return callback(null, this.body.process(chunk));
    if (this.head === null) return callback(null, this.bodyChunk(chunk));
    this.head.push(chunk);
    this.headBytes += chunk.length;
    const buffered = this.head.length === 1 ? chunk : Buffer.concat(this.head, this.headBytes);
    this.head = [buffered];
    const section = findHeaderSection(buffered, false);
    if (section && section.bodyStart <= HEADER_LIMIT_BYTES) {
      this.finishHead(buffered);
    } else if (section || this.headBytes > HEADER_LIMIT_BYTES) {
      this.passOn(buffered);
    }
    callback();
  }

  /**
   * Not a message a device writes; holding more of it would let one message eat the memory. Its
   * lines over 998 octets, header and body alike, are split as body lines are: in a header a
   * break before a space is a fold, and CRLF SP inside a junk token is one too.
   */
  private passOn(buffered: Buffer): void {
    this.headerTooBig = true;
    this.head = null;
    this.body.reported = true;
    this.ctx.onFix?.([`header section over ${HEADER_LIMIT_BYTES / 1024} KiB: only lines over ${MAX_LINE_OCTETS} octets folded`]);
    this.push(this.body.process(buffered));
  }

  override _flush(callback: TransformCallback): void {
    if (this.head === null) return callback();
    const buffered = Buffer.concat(this.head, this.headBytes);
    if (findHeaderSection(buffered, true)!.bodyStart <= HEADER_LIMIT_BYTES) this.finishHead(buffered);
    else this.passOn(buffered);
    callback();
  }

  private finishHead(buffered: Buffer): void {
    this.head = null;
    const { headers, bodyStart, changed } = fixHeaders(buffered, this.ctx);
    if (changed.length > 0) this.ctx.onFix?.(changed);
    this.push(headers);
    if (bodyStart < buffered.length) this.push(this.bodyChunk(buffered.subarray(bodyStart)));
  }

  private bodyChunk(chunk: Buffer): Buffer {
    const out = this.body.process(chunk);
    if (out !== chunk && !this.body.reported) {
      this.body.reported = true;
      this.ctx.onFix?.([`split body lines over ${MAX_LINE_OCTETS} octets`]);
    }
    return out;
  }
}

const CRLF = Buffer.from('\r\n');
const CRLF_SP = Buffer.from('\r\n ');
/** How far back a split looks for a space to break at, so that words stay whole. */
const LOOKBACK = 200;

/**
 * Splits body lines longer than 998 octets, the way Postfix's smtp_line_length_limit does: the
 * continuation starts with a space, so it can never be taken for a MIME boundary or a lone dot.
 * Where the line has a space or tab in its last 200 octets before the limit, the break goes before
 * it and nothing is added; else a CRLF SP is inserted at a UTF-8 character boundary. Base64 and
 * quoted-printable parts never have such lines and pass untouched; a long 8-bit or 7-bit text line
 * gets a line break (the alternative, re-encoding the MIME part, would mean parsing MIME).
 * Only the bytes of the current chunk are looked at; lines shorter than the limit cost nothing.
 */
export class LongLineBreaker {
  /** Octets of the current line seen in earlier chunks. */
  private lineLength = 0;
  reported = false;

  /** The chunk with its long lines split; the very same Buffer when nothing was split. */
  process(chunk: Buffer): Buffer {
    let out: Buffer[] | null = null;
    let emitted = 0;
    let i = 0;
    while (i < chunk.length) {
      const lf = chunk.indexOf(0x0a, i);
      const segEnd = lf === -1 ? chunk.length : lf;
      // Line offset 998 falls at chunk index `limit`; a CR there is allowed when it ends the line.
      const limit = i + Math.max(0, MAX_LINE_OCTETS - this.lineLength);
      if (segEnd <= limit || (segEnd === limit + 1 && chunk[limit] === 0x0d)) {
        if (lf === -1) {
          this.lineLength += segEnd - i;
          break;
        }
        this.lineLength = 0;
        i = lf + 1;
        continue;
      }
      out ??= [];
      const space = lastSpace(chunk, limit, Math.max(i + 1, limit - LOOKBACK));
      if (space !== -1) {
        out.push(chunk.subarray(emitted, space), CRLF);
        emitted = i = space;
        this.lineLength = 0;
      } else {
        let cut = limit;
        while (cut > i && limit - cut < 3 && (chunk[cut]! & 0xc0) === 0x80) cut--;
        out.push(chunk.subarray(emitted, cut), CRLF_SP);
        emitted = i = cut;
        this.lineLength = 1;
      }
    }
    if (!out) return chunk;
    out.push(chunk.subarray(emitted));
    return Buffer.concat(out);
  }
}

function lastSpace(chunk: Buffer, from: number, downTo: number): number {
  for (let q = from; q >= downTo; q--) if (chunk[q] === 0x20 || chunk[q] === 0x09) return q;
  return -1;
}
