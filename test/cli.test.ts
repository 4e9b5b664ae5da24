import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { listMessages } from '../src/spool/log.js';
import { openSpool } from '../src/spool/db.js';
import { SpoolStore } from '../src/spool/store.js';
import { CLI, relayConfig, runCli, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

function writeConfig(dir: string, raw: Record<string, unknown>): string {
  const file = join(dir, 'relaybox.yaml');
  writeFileSync(file, stringify(raw));
  return file;
}

/** How long an event may take on a busy 2-core box: a window, not a pace. */
const SLOW = 60_000;

describe('relaybox CLI', () => {
  it('lists, shows, retries and drops messages, and exports the log', async () => {
    const dir = tempDir();
    const up = await TestUpstream.start();
    up.failData(550, '5.7.1 "Daily" quota, of sorts, rejected, permanently');
    const raw = relayConfig(dir, { upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }] });
    const file = writeConfig(dir, raw);
    const { app, port } = await startRelay(raw);
    await sendMail(port, { to: ['a@example.com'], subject: 'Scan, "quoted"\r\n and folded 日本語' });
    const failed = await waitFor(() => listMessages(app.spool.db, { status: 'failed' })[0], SLOW);

    // Each CLI run starts a Node process: seconds apiece on a busy box, so the reading ones run side by side.
    const [list, jsonList, show] = await Promise.all([
      runCli(['queue', 'list', '--config', file]),
      runCli(['queue', 'list', '--status', 'failed', '--json', '--config', file]),
      runCli(['queue', 'show', String(failed.id), '--config', file]),
    ]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${failed.id}\\s+\\S+\\s+failed\\s+1\\s`, 'm'));
    const json = JSON.parse(jsonList.stdout);
    expect(json).toEqual([expect.objectContaining({ id: failed.id, state: 'failed', to: ['a@example.com'] })]);
    // One JSON for scripts: the CLI's is the API's (snake_case, ISO 8601 times).
    const api = `http://127.0.0.1:${app.httpAddress!.port}/api/messages`;
    const [apiList, apiDetail, jsonShow] = await Promise.all([
      fetch(`${api}?status=failed`).then((r) => r.json() as Promise<{ messages: unknown[] }>),
      fetch(`${api}/${failed.id}`).then((r) => r.json()),
      runCli(['queue', 'show', String(failed.id), '--json', '--config', file]),
    ]);
    expect(json).toEqual(apiList.messages);
    expect(json[0].received_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(JSON.parse(jsonShow.stdout)).toEqual(apiDetail);

    expect(show.stdout).toContain('state:     failed');
    expect(show.stdout).toMatch(/a@example\.com\s+failed via primary\s+550 5\.7\.1/);
    expect(show.stdout).toMatch(/Subject: Scan/);
    expect(show.stdout).toMatch(/failed\s+primary\s+a@example\.com\s+550/);

    up.failData(null);
    // A 5xx will most likely come again: said, and nothing done without --force (never a prompt).
    const refused = await runCli(['queue', 'retry', String(failed.id), '--config', file]);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toContain(`message ${failed.id}: the upstream refused this recipient permanently`);
    expect(refused.stderr).toContain(`relaybox queue retry ${failed.id} --force`);
    expect(listMessages(app.spool.db)[0]!.state).toBe('failed');
    const retry = await runCli(['queue', 'retry', String(failed.id), '--force', '--config', file]);
    expect(retry).toMatchObject({ code: 0, stdout: `message ${failed.id} queued again\n` });
    await up.waitForMessages(1, SLOW); // the running service picks the CLI's change up by itself
    await waitFor(() => listMessages(app.spool.db)[0]?.state === 'delivered', SLOW);

    const [csv, jsonLog] = await Promise.all([
      runCli(['log', 'export', '--format', 'csv', '--config', file]),
      runCli(['log', 'export', '--format', 'json', '--since', '1h', '--config', file]),
    ]);
    const rows = parseCsv(csv.stdout, { columns: true }) as Record<string, string>[];
    expect(rows.map((r) => r.event)).toEqual(['accepted', 'failed', 'retry', 'delivered']);
    expect(rows[1]!.reply).toBe('550 5.7.1 "Daily" quota, of sorts, rejected, permanently');
    expect(rows[0]!.subject).toBe('Scan, "quoted" and folded 日本語');
    const lines = jsonLog.stdout.trim().split('\n');
    expect(JSON.parse(lines[3]!)).toMatchObject({ id: failed.id, event: 'delivered', upstream: 'primary', to: 'a@example.com' });

    await sendMail(port, { to: ['b@example.com'] }); // delivered at once: cannot be dropped any more
    const second = await waitFor(() => listMessages(app.spool.db).find((m) => m.id !== failed.id && m.state === 'delivered'), SLOW);
    const [drop, badId] = await Promise.all([runCli(['queue', 'drop', String(second.id), '--config', file]), runCli(['queue', 'show', 'abc', '--config', file])]);
    expect(drop.code).toBe(1);
    expect(badId.code).toBe(2);
  }, 180_000);

  it('log export --format csv defuses formula cells exactly as the console download does; json keeps them', async () => {
    const dir = tempDir();
    const raw = relayConfig(dir, { http: { listen: '127.0.0.1:0', admin_token: 'cli-csv-token' } });
    const file = writeConfig(dir, raw);
    const { app } = await startRelay(raw);
    const subjects = ['=HYPERLINK("http://evil.example","open me")', '+1+1', '-2+3', '@SUM(A1:A2)', '\tTab', '\rCR', 'plain = fine'];
    for (const subject of subjects) {
      const body = app.spool.receive();
      body.write(Buffer.from('From: mfp@example.com\r\nSubject: placeholder\r\n\r\nbody\r\n'));
      await app.spool.accept(body, { mailFrom: '=cmd|calc@example.com', recipients: ['@x@example.com'], client: 'test', subject });
    }
    await waitFor(() => listMessages(app.spool.db, { status: 'delivered' }).length === subjects.length);

    const cli = parseCsv((await runCli(['log', 'export', '--format', 'csv', '--config', file])).stdout, { columns: true }) as Record<string, string>[];
    const accepted = cli.filter((r) => r.event === 'accepted');
    expect(accepted.map((r) => r.subject)).toEqual(["'=HYPERLINK(\"http://evil.example\",\"open me\")", "'+1+1", "'-2+3", "'@SUM(A1:A2)", "'\tTab", "'\rCR", 'plain = fine']);
    expect(accepted[0]).toMatchObject({ from: "'=cmd|calc@example.com", to: "'@x@example.com" });
    const res = await fetch(`http://127.0.0.1:${app.httpAddress!.port}/api/log.csv`, { headers: { Authorization: 'Bearer cli-csv-token' } });
    const web = parseCsv(Buffer.from(await res.arrayBuffer()), { bom: true, columns: true }) as Record<string, string>[];
    expect(cli).toEqual(web);

    const json = (await runCli(['log', 'export', '--format', 'json', '--config', file])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(json.filter((r) => r.event === 'accepted').map((r) => r.subject)).toEqual(subjects);
    // CSV times are wall-clock times a spreadsheet takes as dates; JSON keeps UTC ISO 8601.
    const utc = parseCsv((await runCli(['log', 'export', '--tz', 'UTC', '--config', file])).stdout, { columns: true }) as Record<string, string>[];
    expect(utc[0]).toMatchObject({ time: json[0].time.replace('T', ' ').replace('Z', ''), utc_offset: '+00:00' });
    expect(await runCli(['log', 'export', '--tz', 'Mars/Base', '--config', file])).toMatchObject({ code: 2, stderr: expect.stringContaining('--tz: unknown time zone "Mars/Base"') });
  }, 120_000);

  it('log export | head ends quietly with exit 0', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, relayConfig(dir));
    const store = new SpoolStore(openSpool(dir));
    // Far more than a pipe holds (64 KiB), so that the export is still writing when head has gone.
    for (let i = 0; i < 1000; i++) {
      const body = store.receive();
      body.write(Buffer.from('From: mfp@example.com\r\nSubject: scan\r\n\r\nbody\r\n'));
      await store.accept(body, { mailFrom: 'mfp@example.com', recipients: ['a@example.com'], client: 'test', subject: `scan ${'x'.repeat(300)}` });
    }
    store.close();
    const piped = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const shell = spawn('bash', ['-c', 'set -o pipefail; "$0" "$1" log export --config "$2" | head -n 1', process.execPath, CLI, file]);
      let stdout = '';
      let stderr = '';
      shell.stdout.on('data', (d) => (stdout += d));
      shell.stderr.on('data', (d) => (stderr += d));
      shell.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    expect(piped).toEqual({ code: 0, stdout: 'time,utc_offset,id,event,from,to,subject,size,upstream,reply,duration_ms\n', stderr: '' });
  });

  it('--help names the configuration lookup and gives two examples per command', async () => {
    const [top, retry, exportHelp] = await Promise.all([runCli(['--help']), runCli(['queue', 'retry', '--help']), runCli(['log', 'export', '--help'])]);
    for (const help of [top, retry, exportHelp]) {
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/--config FILE\n {2}\$RELAYBOX_CONFIG\n {2}\/etc\/relaybox\/relaybox\.yaml\n {2}config\/relaybox\.example\.yaml/);
    }
    expect(retry.stdout).toMatch(/Examples:\n {2}relaybox queue retry 42\n {2}relaybox queue retry --all-deferred .*\n/);
    expect(exportHelp.stdout).toMatch(/Examples:\n {2}relaybox log export .*\n {2}relaybox log export .*\n/);
  });

  it('queue flush and retry --all-deferred make deferred mail due now; --all takes the failed too', async () => {
    const dir = tempDir();
    const up = await TestUpstream.start();
    up.failData(451, '4.3.2 Try again later');
    const raw = relayConfig(dir, {
      upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }],
      delivery: { retry: { first: '1h', max: '1h', give_up_after: '2h' } },
    });
    const file = writeConfig(dir, raw);
    const { app, port } = await startRelay(raw);
    await sendMail(port, { to: ['a@example.com'] });
    await sendMail(port, { to: ['b@example.com'] });
    const deferred = await waitFor(() => listMessages(app.spool.db, { status: 'deferred' }).length === 2 && listMessages(app.spool.db, { status: 'deferred' }), SLOW);
    const ids = deferred.map((m) => m.id).sort((a, b) => a - b);

    // A pending recipient says why it waits.
    const show = await runCli(['queue', 'show', String(ids[0]), '--config', file]);
    expect(show.stdout).toMatch(/^ {2}\S+@example\.com {2}pending via primary {2}451 4\.3\.2 Try again later$/m);

    up.failData(null);
    const flush = await runCli(['queue', 'flush', '--config', file]);
    expect(flush).toMatchObject({ code: 0, stdout: `2 deferred message(s) queued again: ${ids.join(', ')}\n` });
    await up.waitForMessages(2, SLOW); // the running service notices the CLI's change by itself
    await waitFor(() => listMessages(app.spool.db, { status: 'delivered' }).length === 2, SLOW);

    up.rejectRecipient('nobody@example.com', 550, '5.1.1 No such user');
    await sendMail(port, { to: ['nobody@example.com'] });
    const failed = await waitFor(() => listMessages(app.spool.db, { status: 'failed' })[0], SLOW);
    const [none, all] = [await runCli(['queue', 'retry', '--all-deferred', '--config', file]), await runCli(['queue', 'retry', '--all', '--config', file])];
    expect(none).toMatchObject({ code: 0, stdout: '0 deferred message(s) queued again\n' });
    expect(all).toMatchObject({ code: 0, stdout: `1 deferred or failed message(s) queued again: ${failed.id}\n` });
    expect(all.stderr).toBe(`relaybox: note: the upstream refused 1 of them permanently (5xx); they will most likely fail again: ${failed.id}\n`);
    expect((await runCli(['queue', 'retry', '42', '--all', '--config', file])).code).toBe(2);
  }, 180_000);

  it('drops a waiting message', async () => {
    const dir = tempDir();
    const down = await TestUpstream.start();
    await down.stop();
    const raw = relayConfig(dir, {
      upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: down.port, security: 'none' }],
      delivery: { retry: { first: '1h', max: '1h', give_up_after: '2h' } },
    });
    const file = writeConfig(dir, raw);
    const { app, port } = await startRelay(raw);
    await sendMail(port, { to: ['a@example.com'] });
    const waiting = await waitFor(() => listMessages(app.spool.db, { status: 'deferred' })[0]);
    const [list, delivering] = await Promise.all([
      runCli(['queue', 'list', '--config', file]),
      runCli(['queue', 'list', '--status', 'delivering', '--config', file]),
    ]);
    expect(list.stdout).toMatch(/\n-- 1 message waiting \(1 deferred\), 1 KiB\n$/); // as mailq ends
    expect(delivering.stdout).toBe('no message is delivering\n-- 1 message waiting (1 deferred), 1 KiB\n');
    const drop = await runCli(['queue', 'drop', String(waiting.id), '--config', file]);
    expect(drop).toMatchObject({ code: 0, stdout: `message ${waiting.id} dropped\n` });
    expect(listMessages(app.spool.db)[0]!.state).toBe('dropped');
  });

  it('send-test delivers a well-formed message and prints the outcome', async () => {
    const dir = tempDir();
    const file = writeConfig(dir, relayConfig(dir));
    const result = await runCli(['send-test', '--to', 'admin@example.com', '--config', file]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/admin@example\.com: delivered via outbox/);
    const [eml] = readdirSync(join(dir, 'outbox'));
    const text = readFileSync(join(dir, 'outbox', eml!), 'utf8');
    expect(text).toMatch(/^Message-ID: <[^>]+@relaybox\.test\.example>\r$/m);
    expect(text).toMatch(/^Date: /m);
  });

  it('send-test reports an upstream that refuses, with exit 1', async () => {
    const dir = tempDir();
    const down = await TestUpstream.start();
    await down.stop();
    const file = writeConfig(dir, relayConfig(dir, { upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: down.port, security: 'none' }] }));
    const result = await runCli(['send-test', '--to', 'admin@example.com', '--config', file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/deferred — .*(ECONNREFUSED|connect)/i);
    expect((await runCli(['send-test', '--to', 'x@example.com', '--upstream', 'nope', '--config', file])).code).toBe(2);
  });

  it('hash-password makes a hash that logs a device in', async () => {
    const hashed = await runCli(['hash-password'], 'scan-pass\n');
    expect(hashed.code).toBe(0);
    const hash = hashed.stdout.trim();
    expect(hash).toMatch(/^\$scrypt\$/);
    const dir = tempDir();
    const { port } = await startRelay(relayConfig(dir, { smtp: { listen: ['127.0.0.1:0'], tls: { mode: 'none' }, auth: { required: true, users: [{ username: 'scanner', password_hash: hash }] } } }));
    await expect(sendMail(port, { to: ['a@example.com'], auth: { user: 'scanner', pass: 'scan-pass' } })).resolves.toMatchObject({ response: expect.stringMatching(/^250/) });
    await expect(sendMail(port, { to: ['a@example.com'], auth: { user: 'scanner', pass: 'wrong' } })).rejects.toMatchObject({ responseCode: 535 });
    await expect(sendMail(port, { to: ['a@example.com'] })).rejects.toMatchObject({ responseCode: 530 });
  });
});
