import { accessSync, constants } from 'node:fs';
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { parseHostPort, type ListenAddress } from './net.js';

/** Field types shared by the config sections; each error names what was written. */

/** `10m` → 600000 (ms). */
export const duration = z.string().transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined) ctx.addIssue({ code: 'custom', message: `expected a duration like 30s, 10m, 48h or 7d, got "${text}"` });
  return ms ?? 0;
});

/** `0.0.0.0:25`, `[::1]:2525` → { host, port }. */
export const hostPort = z.string().transform((text, ctx): ListenAddress => {
  const parsed = parseHostPort(text);
  if (!parsed) ctx.addIssue({ code: 'custom', message: `expected host:port, got "${text}"` });
  return parsed ?? { host: '', port: 0 };
});

/** A path relaybox must read at start (a CA certificate): refused now rather than at the first delivery. */
export const readableFile = z.string().refine(
  (path) => {
    try {
      accessSync(path, constants.R_OK);
      return true;
    } catch {
      return false;
    }
  },
  { error: (issue) => `cannot read the file "${String(issue.input)}"` },
);
