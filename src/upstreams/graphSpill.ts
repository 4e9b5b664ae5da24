import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, rmSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';

/** A run of base64 lines at least this long goes to a file; shorter ones stay in the skeleton. */
const SPILL_MIN_BYTES = 256 * 1024;
/** Bytes of the base64 alphabet (A–Z, a–z, 0–9, +, /). */
const ALPHABET = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') ALPHABET[c.charCodeAt(0)] = 1;

/**
 * How many base64 characters the line `data[start, end)` carries as a line of a base64 body (the
 * alphabet only, up to two `=` at its end, then CRLF or LF), or -1 when it is not such a line. A
 * byte loop on indices: it runs on every line of a 30 MB scan, and an object per line would be
 * garbage that outlives the young generation while the file write holds it.
 */
function base64Chars(data: Buffer, start: number, end: number): number {
  if (end > start && data[end - 1] === 10) end -= 1;
  if (end > start && data[end - 1] === 13) end -= 1;
  let pad = 0;
  while (pad < 2 && end > start && data[end - 1] === 61) {
    end -= 1;
    pad += 1;
  }
  if (end === start) return -1;
  for (let i = start; i < end; i++) if (ALPHABET[data[i]!] !== 1) return -1;
  return end - start;
}

const SPILL_FILE = /^graph\.[0-9a-f]+\.\d+\.b64$/;

/**
 * Removes spilled bodies a crash or power cut left behind (a 30 MB scan each, on an SD card). Called
 * when a delivery thread makes its upstreams, before any send: none of these files is in use then.
 */
export function sweepSpills(tmpDir: string): void {
  let names: string[];
  try {
    names = readdirSync(tmpDir);
  } catch {
    return; // no tmp yet
  }
  for (const name of names) if (SPILL_FILE.test(name)) rmSync(join(tmpDir, name), { force: true });
}

/** One base64 body taken out of the message: its file and how many bytes it decodes to. */
export interface SpilledBody {
  file: string;
  bytes: number;
}

/** The message with its large base64 bodies replaced by markers, and where each body went. */
export interface Skeleton {
  raw: ArrayBuffer;
  /** Marker (the decoded content a parser will see in place of the body) → the spilled body. */
  bodies: Map<string, SpilledBody>;
  /** Removes the spilled files. */
  dispose(): void;
}

/**
 * A large scan is one big base64 body. The MIME parser (postal-mime) wants a message whole, and
 * holds several copies of every attachment while it decodes: for a 30 MB scan that is well over
 * the memory a Pi should spend. So the body is streamed to a file under `<data_dir>/tmp` and a
 * one-line marker put in its place; the parser then reads the small skeleton (structure, text,
 * headers), and each attachment whose content is a marker is read back from its file in pieces.
 * Runs of base64 lines are recognised by their alphabet alone: the parser still does the MIME.
 */
export async function spillLargeBodies(message: AsyncIterable<Buffer>, tmpDir: string): Promise<Skeleton> {
  mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
  const nonce = randomBytes(6).toString('hex');
  const bodies = new Map<string, SpilledBody>();
  const skeleton: Buffer[] = [];
  const dispose = () => {
    for (const body of bodies.values()) rmSync(body.file, { force: true });
  };
  let run: Buffer[] = [];
  let runBytes = 0;
  let chars = 0;
  let spill = null as { out: WriteStream; file: string } | null;
  const closing: Promise<void>[] = [];

  // Synchronous per line: a 30 MB scan has 400,000 of them. While a body spills, its lines are not
  // cut out one by one: each chunk's stretch of them goes to the file as one write.
  const endRun = () => {
    if (spill) {
      spill.out.end();
      const closed = finished(spill.out);
      closed.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
      closing.push(closed);
      const marker = `relaybox-spill:${nonce}:${bodies.size}`;
      bodies.set(marker, { file: spill.file, bytes: Math.floor((chars * 3) / 4) });
      skeleton.push(Buffer.from(`${Buffer.from(marker).toString('base64')}\r\n`));
      spill = null;
    } else skeleton.push(...run);
    run = [];
    runBytes = 0;
    chars = 0;
  };
  /** A line not yet spilling: kept in the run, which starts spilling once it is long enough. */
  const holdLine = (line: Buffer, lineChars: number) => {
    chars += lineChars;
    run.push(line);
    runBytes += line.length;
    if (runBytes < SPILL_MIN_BYTES) return;
    const file = join(tmpDir, `graph.${nonce}.${bodies.size}.b64`);
    spill = { out: createWriteStream(file, { mode: 0o600, highWaterMark: 1024 * 1024 }), file };
    for (const held of run) spill.out.write(held);
    run = [];
  };

  try {
    let partial: Buffer | null = null;
    for await (const chunk of message) {
      const data = chunk as Buffer;
      let spillingFrom = -1;
      const flush = (to: number) => {
        if (spillingFrom !== -1 && spill && to > spillingFrom) spill.out.write(data.subarray(spillingFrom, to));
        spillingFrom = -1;
      };
      let start = 0;
      let at = data.indexOf(10);
      while (at !== -1) {
        const line = partial ? Buffer.concat([partial, data.subarray(start, at + 1)]) : null;
        partial = null;
        const [buf, from, to] = line ? [line, 0, line.length] : [data, start, at + 1];
        const lineChars = base64Chars(buf, from, to);
        // Padding ends a body (or, with mailers that pad every line, a unit of it: then the markers
        // of one body are not one attachment, and the whole message is parsed instead).
        const padded = lineChars !== -1 && buf[to - 1 - (buf[to - 2] === 13 ? 2 : 1)] === 61;
        if (lineChars === -1) {
          flush(start);
          endRun();
          skeleton.push(line ?? data.subarray(from, to));
        } else if (spill && !line) {
          if (spillingFrom === -1) spillingFrom = start;
          chars += lineChars;
          if (padded) {
            flush(at + 1);
            endRun();
          }
        } else {
          flush(start);
          if (spill) {
            chars += lineChars;
            spill.out.write(buf.subarray(from, to));
          } else holdLine(line ?? data.subarray(from, to), lineChars);
          if (padded) endRun();
        }
        start = at + 1;
        at = data.indexOf(10, start);
      }
      flush(start);
      if (start < data.length) partial = partial ? Buffer.concat([partial, data.subarray(start)]) : Buffer.from(data.subarray(start));
      const out = spill?.out;
      if (out?.writableNeedDrain) await once(out, 'drain');
    }
    endRun();
    if (partial) skeleton.push(partial);
    await Promise.all(closing);
  } catch (err) {
    if (spill) {
      spill.out.destroy();
      rmSync(spill.file, { force: true });
    }
    dispose();
    throw err;
  }
  const whole = Buffer.concat(skeleton);
  return { raw: whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.length), bodies, dispose };
}

/**
 * A spilled body decoded, piece by piece as the file is read. Node's base64 decoder skips line
 * breaks, so each piece is cut where the characters before it make whole 4-character units.
 */
export async function* decodedBody(body: SpilledBody): AsyncGenerator<Buffer> {
  let carry: Buffer | null = null;
  for await (const chunk of createReadStream(body.file, { highWaterMark: 256 * 1024 })) {
    const data: Buffer = carry ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    let units = 0;
    for (let i = 0; i < data.length; i++) if (data[i] !== 13 && data[i] !== 10) units += 1;
    let cut = data.length;
    // Step back over the characters of the last, incomplete unit (and the line breaks among them).
    for (let extra = units % 4; extra > 0; cut -= 1) if (data[cut - 1] !== 13 && data[cut - 1] !== 10) extra -= 1;
    carry = cut < data.length ? Buffer.from(data.subarray(cut)) : null;
    if (cut > 0) yield Buffer.from(data.subarray(0, cut).toString('latin1'), 'base64');
  }
  if (carry) yield Buffer.from(carry.toString('latin1'), 'base64');
}
