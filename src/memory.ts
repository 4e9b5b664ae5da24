import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * The buffers a big message streams through (socket reads on the way in, spool chunks on the
 * way out) are garbage as soon as they are copied on, but V8 only collects such off-heap memory
 * once ~64 MB of it has piled up. On a Pi that would let one 30 MB scan add more than 50 MB to
 * the service. So every few megabytes streamed, a young-generation collection (~0.5 ms) frees
 * them: measured, the peak while relaying 30 MB falls from about idle + 54 MB to idle + 25 MB.
 */
const EVERY_BYTES = 2 * 1024 * 1024;

type Collect = (options?: { type: 'minor' | 'major' }) => void;
let collect: Collect | null | undefined;
let streamed = 0;

function collector(): Collect | null {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as Collect;
    } catch {
      collect = null; // a runtime without the flag: memory is merely less tight
    }
  }
  return collect;
}

/** Counts bytes that passed through a stream; now and then frees what they left behind. */
export function noteStreamedBytes(bytes: number): void {
  streamed += bytes;
  if (streamed < EVERY_BYTES) return;
  streamed = 0;
  collector()?.({ type: 'minor' });
}
