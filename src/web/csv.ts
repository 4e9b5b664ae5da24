import { stringify } from 'csv-stringify';
import type { Context } from 'hono';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
// The CLI's `log export` columns, so both exports read the same. (They would sit better a floor
// lower, next to exportLog; importing them keeps one definition until they move.)
import { parseDuration } from '../config/duration.js';
import { CSV_COLUMNS, csvRecord, exportLog } from '../spool/log.js';
import { localTimeFormatter } from '../spool/logTime.js';
import { defuseFormulas } from '../spool/logCells.js';
import { openSpool } from '../spool/db.js';
import type { WebEnv } from './auth.js';

/**
 * `since`/`until`: an ISO date or time (`2026-11-01`, `2026-11-01T08:00:00Z`), epoch
 * milliseconds, or a duration back from now (`24h`, `7d`). Undefined when absent, a message
 * when malformed.
 */
export function parseTime(text: string | undefined, name: string, now = Date.now()): number | string | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const back = parseDuration(text.trim());
  if (back !== undefined) return now - back;
  if (/^\d{10,15}$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isNaN(at) ? `${name}: expected a date (2026-11-01), an ISO time or a duration back (24h), got "${text}"` : at;
}

/**
 * GET /api/log.csv?since=&until=&tz= — the delivery log as a spreadsheet opens it: times in the
 * box's time zone (or `tz`) in a form Excel takes as a date, the UTC offset beside; UTF-8 with a BOM
 * (Excel otherwise guesses a legacy code page and garbles Japanese), CRLF rows, RFC 4180 quoting,
 * and cells that would start a formula prefixed with `'`. Streamed from its own read-only
 * connection: a long export never holds the service's connection busy between chunks.
 */
export function logCsv(dataDir: string) {
  return (c: Context<WebEnv>): Response => {
    const since = parseTime(c.req.query('since'), 'since');
    const until = parseTime(c.req.query('until'), 'until');
    if (typeof since === 'string' || typeof until === 'string') return c.json({ error: typeof since === 'string' ? since : until }, 400);
    if (since !== undefined && until !== undefined && until < since) return c.json({ error: 'until is before since' }, 400);
    let local: ReturnType<typeof localTimeFormatter>;
    try {
      local = localTimeFormatter(c.req.query('tz') || undefined);
    } catch (err) {
      return c.json({ error: `tz: ${(err as Error).message}` }, 400);
    }
    const db = openSpool(dataDir, { readonly: true });
    const rows = Readable.from(
      (function* () {
        for (const row of exportLog(db, { since, until })) yield defuseFormulas(csvRecord(row, local));
      })(),
    );
    const csv = stringify({ bom: true, header: true, columns: [...CSV_COLUMNS], record_delimiter: 'windows' });
    // Ends (or is cut off by the client going away) → the read connection closes.
    pipeline(rows, csv)
      .catch(() => undefined)
      .finally(() => db.close());
    const stamp = new Date().toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-');
    return new Response(Readable.toWeb(csv) as ReadableStream, {
      headers: {
        'Content-Type': 'text/csv; charset=utf-8',
        'Content-Disposition': `attachment; filename="relaybox-log-${stamp}.csv"`,
        'Cache-Control': 'no-store',
      },
    });
  };
}
