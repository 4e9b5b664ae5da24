/**
 * The delivery log as spreadsheet cells, shared by the console's CSV download and
 * `relaybox log export --format csv` so that both guard the same cells the same way.
 */

/** Spreadsheets run a cell that starts like a formula; a device chooses its subject freely. */
const FORMULA_START = /^[=+\-@\t\r]/;

/** The columns a device or an upstream writes; the others (time, id, event, numbers) are ours. */
const UNTRUSTED = new Set<string>(['from', 'to', 'subject', 'upstream', 'reply']);

/** A copy of a log record whose untrusted cells that would start a formula are prefixed with `'`. */
export function defuseFormulas<T extends Record<string, string | number | null>>(record: T): T {
  const out: Record<string, string | number | null> = { ...record };
  for (const [key, value] of Object.entries(out)) {
    if (UNTRUSTED.has(key) && typeof value === 'string' && FORMULA_START.test(value)) out[key] = `'${value}`;
  }
  return out as T;
}
