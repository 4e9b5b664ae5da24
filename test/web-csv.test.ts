import { parse as parseCsv } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import type { RelayApp } from '../src/app.js';
import { CSV_COLUMNS, csvRecord } from '../src/spool/log.js';
import { localTimeFormatter } from '../src/spool/logTime.js';
import { exportLog, listMessages } from '../src/spool/log.js';
import { relayConfig, startRelay, waitFor } from './helpers/relay.js';
import { tempDir } from './helpers/tmp.js';

const TOKEN = 'csv-export-token';
const auth = { Authorization: `Bearer ${TOKEN}` };

/** A message straight into the spool, with a subject SMTP could never carry (a bare newline). */
async function spoolMessage(app: RelayApp, from: string, to: string[], subject: string): Promise<number> {
  const body = app.spool.receive();
  body.write(Buffer.from(`From: ${from}\r\nSubject: placeholder\r\n\r\nbody\r\n`));
  return app.spool.accept(body, { mailFrom: from, recipients: to, client: 'test', subject });
}

async function download(app: RelayApp, query = ''): Promise<{ res: Response; bytes: Buffer }> {
  const res = await fetch(`http://127.0.0.1:${app.httpAddress!.port}/api/log.csv${query}`, { headers: auth });
  return { res, bytes: Buffer.from(await res.arrayBuffer()) };
}

describe('GET /api/log.csv', () => {
  it('parses back to the same rows: commas, quotes, newlines and Japanese, UTF-8 with a BOM', async () => {
    const { app } = await startRelay(relayConfig(tempDir(), { http: { admin_token: TOKEN } }));
    const subjects = [
      'Scan, "quoted", and, commas',
      'line one\nline two\r\nline three',
      '請求書 第3四半期（スキャン）',
      '<script>alert("x")</script>',
      '',
    ];
    for (const [i, subject] of subjects.entries()) await spoolMessage(app, `dev${i}@example.com`, [`a${i}@example.com`, 'b@example.com'], subject);
    await waitFor(() => listMessages(app.spool.db, { status: 'delivered' }).length === subjects.length);

    const { res, bytes } = await download(app);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="relaybox-log-\d{8}-\d{4}\.csv"$/);
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const text = bytes.toString('utf8');
    expect(text.slice(1, text.indexOf('\r\n'))).toBe(CSV_COLUMNS.join(','));

    const rows = parseCsv(bytes, { bom: true, columns: true, record_delimiter: '\r\n' }) as Record<string, string>[];
    const expected = [...exportLog(app.spool.db)].map((r) =>
      Object.fromEntries(Object.entries(csvRecord(r, localTimeFormatter())).map(([k, v]) => [k, v === null ? '' : String(v)])),
    );
    expect(expected).toHaveLength(subjects.length * 2); // accepted + delivered each
    expect(rows).toEqual(expected);
    expect(rows.filter((r) => r.event === 'accepted').map((r) => r.subject)).toEqual(subjects);
    expect(rows[0]).toMatchObject({ id: expect.stringMatching(/^\d+$/), event: 'accepted', from: 'dev0@example.com', to: 'a0@example.com b@example.com' });
  });

  it('writes times as a spreadsheet reads a date, in the box zone or the one asked for, with the offset beside', async () => {
    const { app } = await startRelay(relayConfig(tempDir(), { http: { admin_token: TOKEN } }));
    await spoolMessage(app, 'mfp@example.com', ['x@example.com'], 'scan');
    await waitFor(() => listMessages(app.spool.db, { status: 'delivered' }).length === 1);
    const at = [...exportLog(app.spool.db)][0]!.at;
    const first = async (query: string) => (parseCsv((await download(app, query)).bytes, { bom: true, columns: true }) as Record<string, string>[])[0]!;

    const tokyo = await first('?tz=Asia/Tokyo');
    expect(tokyo.time).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(tokyo.utc_offset).toBe('+09:00');
    // The wall-clock time minus its offset is the instant the log holds (to the second).
    expect(Date.parse(`${tokyo.time.replace(' ', 'T')}+09:00`)).toBe(Math.floor(at / 1000) * 1000);
    const utc = await first('?tz=UTC');
    expect(utc).toMatchObject({ time: new Date(Math.floor(at / 1000) * 1000).toISOString().replace('T', ' ').slice(0, 19), utc_offset: '+00:00' });
    // Without tz: the zone of the box (the process's TZ), which the console shows too.
    expect((await first('')).time).toBe(localTimeFormatter()(at).time);

    const { res, bytes } = await download(app, '?tz=Mars/Olympus_Mons');
    expect(res.status).toBe(400);
    expect(JSON.parse(bytes.toString()).error).toMatch(/^tz: unknown time zone "Mars\/Olympus_Mons"/);
  });

  it('keeps to the time range, defuses spreadsheet formulas, and explains a bad range', async () => {
    const { app } = await startRelay(relayConfig(tempDir(), { http: { admin_token: TOKEN } }));
    const started = Date.now();
    await spoolMessage(app, 'mfp@example.com', ['x@example.com'], '=HYPERLINK("http://evil.example","open me")');
    await waitFor(() => listMessages(app.spool.db, { status: 'delivered' }).length === 1);
    const rows = (query: string) => download(app, query).then(({ bytes }) => parseCsv(bytes, { bom: true, columns: true }) as Record<string, string>[]);

    const all = await rows(`?since=${new Date(started - 1000).toISOString()}`);
    expect(all.map((r) => r.event)).toEqual(['accepted', 'delivered']);
    expect(all[0]!.subject).toBe(`'=HYPERLINK("http://evil.example","open me")`);
    expect(await rows('?since=2000-01-01&until=2000-01-02')).toEqual([]);
    expect(await rows(`?until=${started - 60_000}`)).toEqual([]);
    expect((await rows('?since=1h')).length).toBe(2);

    for (const [query, message] of [
      ['?since=yesterday', /since: expected a date/],
      ['?until=soon', /until: expected a date/],
      ['?since=2030-01-02&until=2030-01-01', /until is before since/],
    ] as const) {
      const { res, bytes } = await download(app, query);
      expect(res.status, query).toBe(400);
      expect(JSON.parse(bytes.toString()).error).toMatch(message);
    }
    expect((await fetch(`http://127.0.0.1:${app.httpAddress!.port}/api/log.csv`)).status).toBe(401);
  });
});
