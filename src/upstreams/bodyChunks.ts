import type { Readable } from 'node:stream';

/** A message read as far as `limit`: all of it when it fits, else what was read and the rest. */
export type Peeked = { whole: Buffer } | { start: Buffer[]; rest: AsyncIterator<Buffer> };

/**
 * Reads a stream until it ends or passes `limit` bytes, so an adapter can pick its small or its
 * large path without counting the message first. At most `limit` plus one chunk is held.
 */
export async function peek(stream: Readable, limit: number): Promise<Peeked> {
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const start: Buffer[] = [];
  let size = 0;
  for (;;) {
    const next = await it.next();
    if (next.done) return { whole: Buffer.concat(start, size) };
    start.push(next.value);
    size += next.value.length;
    if (size > limit) return { start, rest: it };
  }
}

/** Gives a peeked stream back up (its file handle, its DKIM signer) when it is not read further. */
export async function discard(peeked: Peeked): Promise<void> {
  if ('rest' in peeked) await peeked.rest.return?.();
}

/** All the bytes of a peeked stream again, in order. */
export async function* replay(peeked: Peeked): AsyncGenerator<Buffer> {
  if ('whole' in peeked) {
    yield peeked.whole;
    return;
  }
  yield* peeked.start;
  for (;;) {
    const next = await peeked.rest.next();
    if (next.done) return;
    yield next.value;
  }
}

/**
 * Cuts a byte stream into pieces of exactly `size` bytes (the last may be shorter) and says which
 * is the last, as chunked upload protocols want. Holds two pieces at most.
 */
export async function* fixedChunks(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<{ bytes: Buffer; last: boolean }> {
  let parts: Buffer[] = [];
  let have = 0;
  let ready: Buffer | null = null;
  for await (const chunk of source) {
    let rest = chunk;
    while (have + rest.length >= size) {
      const take = size - have;
      parts.push(rest.subarray(0, take));
      rest = rest.subarray(take);
      if (ready) yield { bytes: ready, last: false };
      ready = Buffer.concat(parts, size);
      parts = [];
      have = 0;
    }
    if (rest.length > 0) {
      parts.push(rest);
      have += rest.length;
    }
  }
  if (have > 0) {
    if (ready) yield { bytes: ready, last: false };
    yield { bytes: Buffer.concat(parts, have), last: true };
  } else if (ready) {
    yield { bytes: ready, last: true };
  }
}
