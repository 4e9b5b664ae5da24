import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { readFailure } from './unreadable.js';

/**
 * A secret may be written literally, or as `{ env: NAME }` or `{ file: PATH }` so that it can live
 * in a root-only file or a systemd credential. The resolved value is a plain string; callers must
 * never log it.
 */
export const secret = z
  .union([z.string(), z.strictObject({ env: z.string().min(1) }), z.strictObject({ file: z.string().min(1) })], {
    error: 'expected a string, { env: NAME } or { file: PATH }',
  })
  .transform((value, ctx): string => {
    if (typeof value === 'string') return value;
    if ('env' in value) {
      const found = process.env[value.env];
      if (found === undefined) ctx.addIssue({ code: 'custom', message: `environment variable ${value.env} is not set` });
      return found ?? '';
    }
    try {
      // systemd credentials and editors leave a trailing newline; a secret never ends in one.
      return readFileSync(value.file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `cannot read ${value.file}: ${readFailure(err, value.file)}` });
      return '';
    }
  });
