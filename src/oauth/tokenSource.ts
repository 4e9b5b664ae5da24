import type { Logger } from 'pino';
import { assertClockSane } from './clock.js';
import { readJsonFile, removeFile, writePrivateJson } from './files.js';

/** An access token and the moment (ms since the epoch) it stops working. */
export interface AccessToken {
  accessToken: string;
  expiresAt: number;
}

/** Where an upstream gets its bearer tokens; one per upstream, shared by all its connections. */
export interface TokenSource {
  getToken(): Promise<AccessToken>;
  /** The server refused the current token: forget it (memory and disk); the next getToken fetches. */
  invalidate(): void;
}

/** A token is used only while it has this much life left: a send may take a while to reach AUTH. */
export const EXPIRY_MARGIN_MS = 60_000;

/** When the endpoint gives no expires_in: RFC 6749 leaves it open, Google and Microsoft say 1 h. */
const DEFAULT_LIFETIME_S = 3600;

export interface CachingTokenSourceOptions {
  /** Asks the token endpoint (a grant); `now` is the moment of asking. */
  fetch: (now: number) => Promise<{ access_token: string; expires_in?: number }>;
  /** `<data_dir>/oauth/<upstream>.token.json` */
  cacheFile: string;
  /**
   * Who the token is for (grant, endpoint, client, user, scope — never a secret): a cached token
   * is used only when it matches, so changing the config never sends a token for someone else.
   */
  identity: string;
  logger?: Logger;
  now?: () => number;
}

/**
 * A grant behind a cache: in memory, and on disk so that a restart (a Pi rebooting, a config
 * reload) does not ask the endpoint again while the token is good. Concurrent callers share one
 * request. The clock is checked first: with a 1970 clock every expiry decision would be wrong.
 */
export class CachingTokenSource implements TokenSource {
  private current: AccessToken | null = null;
  private diskChecked = false;
  private inFlight: Promise<AccessToken> | null = null;
  private readonly now: () => number;

  constructor(private readonly options: CachingTokenSourceOptions) {
    this.now = options.now ?? Date.now;
  }

  async getToken(): Promise<AccessToken> {
    assertClockSane(this.now());
    if (this.current && this.usable(this.current)) return this.current;
    this.inFlight ??= this.load().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  invalidate(): void {
    this.current = null;
    this.diskChecked = true;
    void removeFile(this.options.cacheFile).catch(() => undefined);
  }

  private usable(token: AccessToken): boolean {
    return token.expiresAt - EXPIRY_MARGIN_MS > this.now();
  }

  private async load(): Promise<AccessToken> {
    if (!this.diskChecked) {
      this.diskChecked = true;
      const cached = await readJsonFile(this.options.cacheFile);
      if (cached?.identity === this.options.identity && typeof cached.access_token === 'string' && typeof cached.expires_at === 'number') {
        const token = { accessToken: cached.access_token, expiresAt: cached.expires_at };
        if (this.usable(token)) return (this.current = token);
      }
    }
    const askedAt = this.now();
    const answer = await this.options.fetch(askedAt);
    // Counted from the request, not the answer: errs on the early side.
    const token = { accessToken: answer.access_token, expiresAt: askedAt + (answer.expires_in ?? DEFAULT_LIFETIME_S) * 1000 };
    this.current = token;
    this.options.logger?.info({ expires_at: new Date(token.expiresAt).toISOString() }, 'OAuth access token obtained');
    try {
      await writePrivateJson(this.options.cacheFile, { identity: this.options.identity, access_token: token.accessToken, expires_at: token.expiresAt });
    } catch (err) {
      // Only the cache is lost: the next start asks the endpoint once more.
      this.options.logger?.warn({ err: (err as Error).message, file: this.options.cacheFile }, 'cannot store the OAuth access token cache');
    }
    return token;
  }
}
