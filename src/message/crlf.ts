import { Transform, type TransformCallback } from 'node:stream';

const LF = 0x0a;
const CR = 0x0d;
const CRLF = Buffer.from('\r\n');

/**
 * Turns bare LF line endings (common from scanners and shell scripts) into CRLF as a body streams
 * through. CRLF input passes byte-identical, and chunks without a bare LF are passed on as they
 * are, without copying. A bare CR is left alone: it is rare and its meaning is unclear.
 */
export class CrlfNormalizer extends Transform {
  /** The last byte of the previous chunk was a CR: a LF that starts this chunk is not bare. */
  private endedWithCr = false;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (chunk.length === 0) return callback();
    callback(null, this.normalize(chunk));
  }

  private normalize(chunk: Buffer): Buffer {
    const pieces: Buffer[] = [];
    let start = 0;
    for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, lf + 1)) {
      const before = lf > 0 ? chunk[lf - 1] : this.endedWithCr ? CR : undefined;
      if (before === CR) continue;
      pieces.push(chunk.subarray(start, lf), CRLF);
      start = lf + 1;
    }
    this.endedWithCr = chunk[chunk.length - 1] === CR;
    if (pieces.length === 0) return chunk;
    pieces.push(chunk.subarray(start));
    return Buffer.concat(pieces);
  }
}
