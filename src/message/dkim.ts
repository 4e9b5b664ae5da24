import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import DKIM from 'nodemailer/lib/dkim';

export interface DkimSignerOptions {
  domain: string;
  selector: string;
  /** PEM; checked at config load (src/config/dkim.ts). */
  privateKey: string;
  /** Where a big message waits while its body is hashed (the signature goes on top, so the whole body is read first). */
  cacheDir: string;
}

/**
 * Past this much, the message being signed is spooled to `cacheDir` instead of memory: a 30 MB
 * scan, four deliveries at a time, must not sit in a Raspberry Pi's RAM. The spool's own chunk
 * size, so a small message never touches the disk.
 */
export const DKIM_MEMORY_BYTES = 256 * 1024;

/** Cache files older than this belong to a process that died; no signing or upload lasts that long. */
const STALE_CACHE_MS = 6 * 3_600_000;

/**
 * Returns a function that DKIM-signs a message stream (rsa-sha256, relaxed/relaxed). Signed are
 * the fields RFC 6376 §5.4.1 recommends that are present — From, To, Cc, Subject, Date,
 * Message-ID, Reply-To, MIME-Version, Content-Type, … — the bottom-most copy of each, which after
 * the fix-ups is the only one. Sign after the fix-ups: any later change breaks the signature.
 */
export function createDkimSigner(options: DkimSignerOptions): (message: Readable) => Readable {
  mkdirSync(options.cacheDir, { recursive: true, mode: 0o700 });
  sweepStaleCache(options.cacheDir);
  const dkim = new DKIM({
    domainName: options.domain,
    keySelector: options.selector,
    privateKey: options.privateKey,
    cacheDir: options.cacheDir,
    cacheTreshold: DKIM_MEMORY_BYTES,
  });
  // The signer errors its output when the input errors, and closes the input (and removes its
  // cache file) when the output is destroyed early — e.g. the upstream hung up mid-DATA.
  return (message) => dkim.sign(message);
}

/** Removes cache files left behind when relaybox was killed during a delivery. */
export function sweepStaleCache(dir: string, now = Date.now()): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith('message.')) continue;
    const path = join(dir, name);
    try {
      if (now - statSync(path).mtimeMs > STALE_CACHE_MS) rmSync(path, { force: true });
    } catch {
      // Gone already, or not ours to remove: either way nothing to do.
    }
  }
}
