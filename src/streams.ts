import type { Readable, Transform, Writable } from 'node:stream';

// stream.pipeline, minus the AbortController that Node 20's pipeline makes and aborts for every
// call: building that abort's DOMException (with its stack trace) was ~3% of relaybox's CPU per
// relayed message, profiled — and a message goes through two pipelines.

/** `source` piped into `through`; an error of the source fails `through`, and closing `through` early closes the source. */
export function chain<T extends Transform>(source: Readable, through: T): T {
  source.once('error', (err) => through.destroy(err));
  through.once('close', () => {
    if (!source.destroyed && !source.readableEnded) source.destroy();
  });
  return source.pipe(through);
}

/** Streams `source` through `through` into `sink`; settles when the sink has everything, or at the first error or early close. */
export function drain(source: Readable, through: Transform, sink: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      through.destroy();
      sink.destroy();
      reject(err);
    };
    for (const stream of [source, through, sink]) stream.once('error', fail);
    source.once('close', () => {
      if (!source.readableEnded) fail(new Error('the stream closed before its end'));
    });
    sink.once('finish', () => {
      if (settled) return;
      settled = true;
      resolve();
    });
    source.pipe(through).pipe(sink);
  });
}
