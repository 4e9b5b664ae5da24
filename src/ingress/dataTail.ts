// smtp-server keeps the last 4 bytes of each DATA chunk (a terminator may straddle two chunks) as
// a view into the chunk, which keeps the whole socket read (up to 64 KiB) alive while a client
// stalls mid-message: 2,000 stalled uploads pinned about 128 MB that way. This keeps a copy of
// the 4 bytes instead. Should a later smtp-server rename the method, the patch steps aside.
import * as streamModule from 'smtp-server/lib/smtp-stream.js';

interface StreamInternals {
  _lastBytes: Buffer | false;
  _feedDataStream(chunk: Buffer, done: () => void): void;
}

export function copyDataTail(): boolean {
  const { SMTPStream } = streamModule as unknown as { SMTPStream?: { prototype: Partial<StreamInternals> & { __relayboxTail?: true } } };
  const proto = SMTPStream?.prototype;
  const feed = proto?._feedDataStream;
  if (!proto || typeof feed !== 'function' || !String(feed).includes('_lastBytes')) return false;
  if (proto.__relayboxTail) return true;
  proto.__relayboxTail = true;
  proto._feedDataStream = function feedDataStream(this: StreamInternals, chunk: Buffer, done: () => void) {
    feed.call(this, chunk, done);
    const tail = this._lastBytes;
    if (tail && tail.byteLength < tail.buffer.byteLength) this._lastBytes = Buffer.from(tail);
  };
  return true;
}
