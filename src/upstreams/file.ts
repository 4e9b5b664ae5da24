import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { FileUpstreamConfig } from '../config/upstreams.js';
import type { UpstreamContext } from './types.js';
import { UpstreamError, type Envelope, type SendResult, type Upstream } from './types.js';

/** `20251126T040000` in UTC: sorts by time and does not jump at DST changes. */
export function fileStamp(date: Date): string {
  return date.toISOString().slice(0, 19).replace(/[-:]/g, '');
}

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

/** Makes a rename durable: the new directory entry survives a power cut (a Pi's SD card). */
async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Writes each message as a `.eml` file holding exactly the message bytes, so a mail client opens
 * it as is. Written to a hidden temp name, fsynced, then renamed: a reader never sees half a file.
 */
export class FileUpstream implements Upstream {
  readonly name: string;
  readonly type = 'file';
  readonly dir: string;
  private readonly logger: Logger;

  constructor(config: FileUpstreamConfig, context: UpstreamContext) {
    this.name = config.name;
    this.dir = config.dir;
    this.logger = context.logger.child({ upstream: config.name });
  }

  describe(): string {
    return `file → ${this.dir}`;
  }

  async send(envelope: Envelope, body: () => Readable): Promise<SendResult> {
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (err) {
      throw new UpstreamError(`cannot create ${this.dir}: ${reason(err)}`, null, 'connect');
    }
    const id = envelope.spoolId !== undefined ? String(envelope.spoolId) : randomBytes(6).toString('hex');
    const filename = `${fileStamp(new Date())}-${id}.eml`;
    const tmp = join(this.dir, `.${filename}.${randomBytes(4).toString('hex')}.tmp`);
    let fh: FileHandle | undefined;
    const source = body();
    try {
      fh = await open(tmp, 'wx', 0o640);
      // Chunk by chunk with backpressure: a 30 MB scan is never held in memory.
      for await (const chunk of source) await writeAll(fh, Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
      await fh.sync();
      await fh.close();
      fh = undefined;
      await rename(tmp, join(this.dir, filename));
      await syncDir(this.dir);
    } catch (err) {
      source.destroy();
      await fh?.close().catch(() => undefined);
      await rm(tmp, { force: true }).catch(() => undefined);
      throw new UpstreamError(`cannot write ${join(this.dir, filename)}: ${reason(err)}`, null, 'io');
    }
    this.logger.debug({ spoolId: envelope.spoolId, file: filename }, 'message written');
    return { accepted: [...envelope.to], rejected: [], reply: `250 written ${filename}` };
  }

  async close(): Promise<void> {
    // Nothing held open between messages.
  }
}
