import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { AuthorizationError, codeFromRedirect } from './authorize.js';
import { listenForRedirect } from './loopback.js';
import { spokenDuration } from './signInWords.js';

export interface CodeWait {
  redirectUri: string;
  port: number;
  /** The authorization code, from the browser's redirect or a pasted address, whichever came first. */
  code: Promise<{ code: string; via: 'browser' | 'terminal' }>;
  /** Stops listening on both; safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Waits for the OAuth redirect two ways at once, because a headless box has no browser of its own:
 * the loopback listener (the admin's browser reaches it directly or through an SSH tunnel), and
 * the terminal, where the admin pastes the address the browser ended on when it could not connect.
 * A wrong paste (another run's state, a truncated address) is explained and the wait goes on; a
 * refusal on the consent page ends it.
 */
export async function waitForAuthorizationCode(options: {
  port: number;
  state: string;
  input: Readable;
  /** Where a wrong paste is explained; `err` carries the reason, for words in another language. */
  tell: (line: string, err?: AuthorizationError) => void;
  timeoutMs: number;
  /** What the browser tab says once the code arrived (default English). */
  browserWords?: { got: string; already: string };
}): Promise<CodeWait> {
  let settle: { resolve: (value: { code: string; via: 'browser' | 'terminal' }) => void; reject: (err: Error) => void } | undefined;
  const code = new Promise<{ code: string; via: 'browser' | 'terminal' }>((resolve, reject) => (settle = { resolve, reject }));
  let finished = false;

  const consider = (text: string, via: 'browser' | 'terminal'): string => {
    if (finished) return options.browserWords?.already ?? 'relaybox already has an answer; you can close this window.';
    try {
      const value = codeFromRedirect(text, options.state);
      finished = true;
      settle!.resolve({ code: value, via });
      return options.browserWords?.got ?? 'relaybox got the authorization. You can close this window and go back to the terminal.';
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof AuthorizationError && err.final) {
        finished = true;
        settle!.reject(err);
      } else {
        options.tell(`relaybox: ${message}`, err instanceof AuthorizationError ? err : undefined);
      }
      return message;
    }
  };

  const loopback = await listenForRedirect(options.port, (pathAndQuery) => consider(pathAndQuery, 'browser'));
  const lines = createInterface({ input: options.input, terminal: false });
  lines.on('line', (line) => {
    if (line.trim()) consider(line, 'terminal');
  });
  // A closed stdin (a script, `< /dev/null`) only means nobody will paste; the browser may still come.
  lines.on('error', () => undefined);
  const timer = setTimeout(() => {
    if (finished) return;
    finished = true;
    const waited = spokenDuration(options.timeoutMs);
    settle!.reject(new AuthorizationError(`no sign-in arrived: waited ${waited}. Run the command again`, true, { reason: 'timeout', waitedMs: options.timeoutMs }));
  }, options.timeoutMs);

  let closing: Promise<void> | undefined;
  return {
    redirectUri: loopback.redirectUri,
    port: loopback.port,
    code,
    close: () =>
      (closing ??= (async () => {
        clearTimeout(timer);
        lines.close();
        options.input.pause();
        await loopback.close();
      })()),
  };
}
