/**
 * Why no access token could be had:
 * - `refused`: the token endpoint said no (invalid_grant, invalid_client, …) — a person must act;
 * - `unavailable`: it could not be asked or answered badly (network, timeout, 5xx) — try again later;
 * - `clock`: this machine's time is wrong, so every token and JWT would be wrong too.
 */
export type TokenFailure = 'refused' | 'unavailable' | 'clock';

/** Never carries a token or secret: its message ends up in replies, logs, MQTT and the console. */
export class TokenError extends Error {
  constructor(
    message: string,
    readonly failure: TokenFailure,
    /** The OAuth `error` code when the endpoint gave one (`invalid_grant`, `slow_down`, …). */
    readonly oauthError?: string,
  ) {
    super(message);
    this.name = 'TokenError';
  }
}

/** The first line of a thrown value, for messages a person reads. */
export function reasonOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}
