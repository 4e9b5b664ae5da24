import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/** N = 2^14, r = 8, p = 1: ~16 MiB and tens of milliseconds per check, even on a Raspberry Pi. */
const DEFAULT_PARAMS = { ln: 14, r: 8, p: 1 };
const SALT_BYTES = 16;
const KEY_BYTES = 32;
const HASH_FORMAT = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

interface ScryptParams {
  ln: number;
  r: number;
  p: number;
}

function derive(password: string, salt: Buffer, keyBytes: number, { ln, r, p }: ScryptParams): Promise<Buffer> {
  const N = 2 ** ln;
  // scrypt needs 128·N·r·p bytes; Node's default cap (32 MiB) would refuse stronger settings.
  const options: ScryptOptions = { N, r, p, maxmem: 128 * N * r * p + 4 * 1024 * 1024 };
  return new Promise((resolve, reject) => scrypt(password, salt, keyBytes, options, (err, key) => (err ? reject(err) : resolve(key))));
}

const b64 = (buf: Buffer): string => buf.toString('base64').replace(/=+$/, '');

/** `$scrypt$ln=14,r=8,p=1$<salt>$<hash>` (unpadded base64), what `relaybox hash-password` prints. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, DEFAULT_PARAMS);
  const { ln, r, p } = DEFAULT_PARAMS;
  return `$scrypt$ln=${ln},r=${r},p=${p}$${b64(salt)}$${b64(key)}`;
}

/**
 * Checks a password against a hash, with the parameters the hash was made with. A malformed hash,
 * or one whose parameters would cost absurd memory or time, never matches.
 */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = HASH_FORMAT.exec(hash);
  if (!m) return false;
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (params.ln < 1 || params.ln > 20 || params.r < 1 || params.r > 32 || params.p < 1 || params.p > 16) return false;
  const salt = Buffer.from(m[4]!, 'base64');
  const expected = Buffer.from(m[5]!, 'base64');
  if (expected.length < 16) return false;
  const actual = await derive(password, salt, expected.length, params);
  return timingSafeEqual(actual, expected);
}

/**
 * Password checks with a memory of recent successes, so a scanner that logs in for every page it
 * sends pays the KDF once. Only a digest of (username, password, hash) is kept — never the
 * password — and a changed hash in the config no longer matches. Failures are never remembered.
 */
export class PasswordVerifier {
  private readonly verified = new Map<string, true>();
  private dummyHash: Promise<string> | undefined;

  constructor(private readonly maxEntries = 64) {}

  /** `hash` undefined (unknown user): still pays one KDF, so timing does not reveal usernames. */
  async verify(username: string, password: string, hash: string | undefined): Promise<boolean> {
    if (hash === undefined) {
      this.dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
      await verifyPassword(password, await this.dummyHash);
      return false;
    }
    const key = createHash('sha256').update(JSON.stringify([username, password, hash])).digest('base64');
    if (this.verified.has(key)) {
      // Re-insert so the map's order is least recently used first.
      this.verified.delete(key);
      this.verified.set(key, true);
      return true;
    }
    if (!(await verifyPassword(password, hash))) return false;
    this.verified.set(key, true);
    while (this.verified.size > this.maxEntries) this.verified.delete(this.verified.keys().next().value!);
    return true;
  }

  /** How many successes are remembered; for tests. */
  get size(): number {
    return this.verified.size;
  }
}
