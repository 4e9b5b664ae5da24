import { z } from 'zod';

const UNITS: Record<string, number> = { '': 1, B: 1, KB: 1024, KIB: 1024, MB: 1024 ** 2, MIB: 1024 ** 2, GB: 1024 ** 3, GIB: 1024 ** 3 };

/** `64MB` → 67108864; `512KB`, `1GB`, a plain number of bytes. Units are binary (1 MB = 1024 KB), as `df -h` counts. */
export function parseBytes(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(text);
  const unit = match ? UNITS[match[2]!.toUpperCase()] : undefined;
  if (!match || unit === undefined) return undefined;
  const bytes = Math.round(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A size in bytes, written `64MB`, `512KB` or as a number of bytes. */
export const byteSize = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const bytes = typeof value === 'number' ? (Number.isSafeInteger(value) && value >= 0 ? value : undefined) : parseBytes(value);
  if (bytes === undefined) ctx.addIssue({ code: 'custom', message: `expected a size like 64MB, 512KB or a number of bytes, got "${String(value)}"` });
  return bytes ?? 0;
});
