import { ConfigError } from '../config/errors.js';

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

/** A failure the CLI reports in one line (no stack trace) and turns into an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = EXIT_RUNTIME,
  ) {
    super(message);
  }
}

export interface ConfigFlag {
  config?: string;
}

/** Prints what went wrong the way a person can act on it, and exits with the right code. */
export function reportAndExit(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`relaybox: bad configuration in ${err.source}:\n${err.located.map((p) => `  ${p}\n`).join('')}`);
    process.exit(EXIT_USAGE);
  }
  if (err instanceof CliError) {
    process.stderr.write(`relaybox: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  const e = err as NodeJS.ErrnoException;
  const hint = e?.code === 'EADDRINUSE' ? ' (another program is listening there: change smtp.listen)' : e?.code === 'EACCES' ? ' (permission denied: ports below 1024 need CAP_NET_BIND_SERVICE)' : '';
  process.stderr.write(`relaybox: ${e?.message ?? String(err)}${hint}\n`);
  if (process.env.RELAYBOX_DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`);
  process.exit(EXIT_RUNTIME);
}

/** `2026-11-01`, an ISO time, or a duration back from now (`24h`, `7d`). */
export function parseSince(text: string, parseDuration: (t: string) => number | undefined): number {
  const back = parseDuration(text);
  if (back !== undefined) return Date.now() - back;
  const at = Date.parse(text);
  if (Number.isNaN(at)) throw new CliError(`--since: expected a date (2026-11-01), a time or a duration (24h), got "${text}"`, EXIT_USAGE);
  return at;
}

export function parseId(text: string): number {
  if (!/^\d+$/.test(text)) throw new CliError(`expected a message id (a number), got "${text}"`, EXIT_USAGE);
  return Number(text);
}

export function isoTime(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '';
}
