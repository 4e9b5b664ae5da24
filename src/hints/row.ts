import type { HintTarget, Login, Provider } from './target.js';

/** One known reply and its fix. Rows are data: the first row whose conditions all hold wins. */
export interface HintRow {
  /** Names the row in tests and logs, e.g. `m365-smtp-auth-disabled`. */
  id: string;
  /** Only for upstreams of these providers; absent: any upstream. */
  providers?: readonly Provider[];
  /** Only for upstreams that log in this way; absent: any. */
  login?: Login;
  /** Matched against the reply: the upstream's words, or relaybox's wording of a socket error. */
  reply: RegExp;
  /** What is wrong and what to do, short, with the upstream's names filled in. */
  hint: (target: HintTarget) => string;
}
