import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/load.js';
import { sizeLimitOf } from '../src/config/sizeLimits.js';
import type { RelayApp } from '../src/app.js';
import { configProblems } from './helpers/config.js';
import { stringify } from 'yaml';
import { relayConfig, runCli, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';
import { SmtpTalk } from './ingress-harness.js';

const MB = 1024 * 1024;

/** A plain SMTP upstream on the test upstream's port. */
function smtpUpstream(name: string, port: number, extra: Record<string, unknown> = {}) {
  return { name, type: 'smtp', host: '127.0.0.1', port, security: 'none', ...extra };
}

/** Google's relay preset: only its limit matters here, nothing is sent to it. */
const GMAIL_RELAY = { name: 'google', type: 'gmail-relay', host: '127.0.0.1', port: 9 };

/** A well-formed message of about `bytes` bytes (a scan: base64 lines), ending with the DATA terminator. */
function scan(bytes: number, subject = 'Scan 0001'): string {
  const head = `From: scanner@office.test\r\nTo: ops@example.com\r\nSubject: ${subject}\r\nDate: Fri, 27 Nov 2026 09:30:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}@office.test>\r\n\r\n`;
  const line = `${'QUJD'.repeat(19)}\r\n`; // 78 bytes
  return `${head}${line.repeat(Math.ceil(bytes / line.length))}.\r\n`;
}

async function talkTo(port: number): Promise<SmtpTalk> {
  const { talk, greeting } = await SmtpTalk.open(port);
  expect(greeting).toMatch(/^220 /);
  return talk;
}

async function ehloSize(config: Record<string, unknown>): Promise<string | undefined> {
  const { port } = await startRelay(config);
  const talk = await talkTo(port);
  const ehlo = await talk.cmd('EHLO mfp');
  await talk.quit();
  return /^250[- ]SIZE (\d+)$/m.exec(ehlo)?.[1];
}

/** Nothing of a refused message anywhere: no row, no body, no partial body, not in the API. */
async function expectNothingKept(app: RelayApp, dir: string): Promise<void> {
  const count = (table: string) => app.spool.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get();
  expect(count('messages')).toBe(0);
  expect(count('body_chunks')).toBe(0);
  const api = (await (await fetch(`http://127.0.0.1:${app.httpAddress!.port}/api/messages`)).json()) as { messages: unknown[] };
  expect(api.messages).toEqual([]);
  // The spool database and its journal, nothing written beside them.
  expect(readdirSync(dir).filter((f) => !/^spool\.db(-wal|-shm)?$|^outbox$|reserve/.test(f))).toEqual([]);
}

describe('size limits: config', () => {
  it('presets know their provider; max_message_bytes overrides, 0 lifts the limit', () => {
    const config = validateConfig({
      hostname: 'relaybox.test.example',
      upstreams: [
        GMAIL_RELAY,
        { name: 'm365', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', client_id: 'c', refresh_token: 'r' },
        { name: 'sg', type: 'smtp', provider: 'sendgrid', auth: { user: 'apikey', pass: 'k' } },
        { name: 'pm', type: 'smtp', provider: 'postmark', auth: { user: 't', pass: 't' } },
        { name: 'ses', type: 'smtp', provider: 'ses', region: 'eu-west-1', auth: { user: 'u', pass: 'p' } },
        { name: 'brevo', type: 'smtp', provider: 'brevo', auth: { user: 'u', pass: 'k' } },
        { name: 'small', type: 'gmail-relay', max_message_bytes: '5MB' },
        { name: 'huge', type: 'gmail-relay', max_message_bytes: 0 },
        { name: 'nas', type: 'smtp', host: 'mail.isp.example' },
      ],
    });
    expect(config.upstreams.map((u) => sizeLimitOf(u))).toEqual([
      { bytes: 25 * MB, label: 'Gmail' },
      { bytes: 35 * MB, label: 'Microsoft 365' },
      { bytes: 30 * MB, label: 'SendGrid' },
      { bytes: 10 * MB, label: 'Postmark' },
      { bytes: 40 * MB, label: 'Amazon SES' },
      { bytes: 20 * MB, label: 'Brevo' },
      { bytes: 5 * MB, label: 'Gmail' },
      { bytes: 0, label: 'Gmail' },
      { bytes: 0, label: 'nas' },
    ]);
  });

  it('check-config shows each upstream\'s limits: size and pacing', async () => {
    const dir = tempDir();
    const file = join(dir, 'relaybox.yaml');
    const upstreams = [{ ...GMAIL_RELAY, port: 587 }, { name: 'pm', type: 'smtp', provider: 'postmark', auth: { user: 't', pass: 't' }, max_message_bytes: '5MB' }, { name: 'outbox', type: 'file', dir: join(dir, 'outbox'), rate: { per_minute: 3 } }];
    writeFileSync(file, stringify(relayConfig(dir, { upstreams })));
    const { code, stdout } = await runCli(['check-config', '--config', file]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^upstream 1 google \(gmail-relay\): .*; messages up to 25 MB; at most 10,000 messages a day, 10,000 recipients a day$/m);
    expect(stdout).toMatch(/^upstream 2 pm \(smtp\): .*; messages up to 5 MB$/m);
    expect(stdout).toMatch(/^upstream 3 outbox \(file\): file → \S+outbox; at most 3 messages a minute$/m);
  });

  it('names the key path of a bad size', () => {
    const upstream = (value: string) => `upstreams: [{ name: out, type: file, dir: ./out }, { name: g, type: gmail-relay, max_message_bytes: ${value} }]`;
    expect(configProblems(upstream('lots'))).toEqual(['upstreams[1].max_message_bytes: expected a size like 64MB, 512KB or a number of bytes, got "lots"']);
    expect(configProblems(upstream('100'))).toEqual(['upstreams[1].max_message_bytes: expected 0 (no limit) or at least 1KB, like 25MB']);
    expect(configProblems(upstream('-1'))).toEqual(['upstreams[1].max_message_bytes: expected a size like 64MB, 512KB or a number of bytes, got "-1"']);
  });
});

describe('size limits: what the device hears', () => {
  it('EHLO advertises the largest message any route can take', async () => {
    // Google's preset alone: 25 MB.
    expect(await ehloSize(relayConfig(tempDir(), { upstreams: [GMAIL_RELAY] }))).toBe(String(25 * MB));
    // A recipient no rule matches may go through every upstream: the unlimited file upstream lets smtp.max_message_bytes decide.
    const dir = tempDir();
    const both = [GMAIL_RELAY, { name: 'outbox', type: 'file', dir: join(dir, 'outbox') }];
    expect(await ehloSize(relayConfig(dir, { upstreams: both }))).toBe('36700160');
    // A catch-all route to Google only: the file upstream is out of reach.
    expect(await ehloSize(relayConfig(dir, { upstreams: both, routes: [{ match: {}, upstreams: ['google'] }] }))).toBe(String(25 * MB));
    // An override, and the box's own limit when it is the smaller one.
    expect(await ehloSize(relayConfig(tempDir(), { upstreams: [{ ...GMAIL_RELAY, max_message_bytes: '30MB' }] }))).toBe(String(30 * MB));
    expect(await ehloSize(relayConfig(tempDir(), { upstreams: [{ ...GMAIL_RELAY, max_message_bytes: '40MB' }] }))).toBe('36700160');
    expect(await ehloSize(relayConfig(tempDir(), { upstreams: [GMAIL_RELAY], smtp: { max_message_bytes: 10 * MB } }))).toBe(String(10 * MB));
  });

  it('refuses MAIL FROM with a SIZE= above it at once: 552 5.3.4', async () => {
    const dir = tempDir();
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [{ ...GMAIL_RELAY, max_message_bytes: '1MB' }] }));
    const talk = await talkTo(port);
    await talk.cmd('EHLO mfp');
    expect(await talk.cmd(`MAIL FROM:<scanner@office.test> SIZE=${3 * MB}`)).toBe('552 5.3.4 Message too large for Gmail: 1 MB max (this one 3 MB)');
    // The same session may still send something that fits.
    expect(await talk.cmd(`MAIL FROM:<scanner@office.test> SIZE=${MB - 1000}`)).toMatch(/^250 /);
    await talk.quit();
    await expectNothingKept(app, dir);
  });

  it('refuses a message too large for every upstream of its route at the end of DATA, in words for the panel, keeping nothing', async () => {
    const dir = tempDir();
    const up = await TestUpstream.start();
    const raw = relayConfig(dir, {
      upstreams: [
        { ...GMAIL_RELAY, max_message_bytes: '1MB' },
        smtpUpstream('backup', up.port, { max_message_bytes: 512 * 1024 }),
        { name: 'outbox', type: 'file', dir: join(dir, 'outbox') },
      ],
      routes: [{ match: { to: '*@example.com' }, upstreams: ['google', 'backup'] }],
    });
    const { app, port } = await startRelay(raw);
    const talk = await talkTo(port);
    // The other route (every upstream, the file one unlimited) could take it: SIZE= alone does not refuse.
    expect(await talk.cmd('EHLO mfp')).toContain('SIZE 36700160');
    // A declared size this recipient's route cannot take: refused at RCPT TO, before the upload.
    expect(await talk.cmd(`MAIL FROM:<scanner@office.test> SIZE=${3 * MB}`)).toMatch(/^250 /);
    expect(await talk.cmd('RCPT TO:<archive@files.test>')).toMatch(/^250 /);
    expect(await talk.cmd('RCPT TO:<ops@example.com>')).toBe('552 5.3.4 Message too large for Gmail: 1 MB max (this one 3 MB)');
    expect(await talk.cmd('RSET')).toMatch(/^250 /);
    // Undeclared, it is refused at the end of DATA; the largest upstream of the route is named: Google's, at 1 MB.
    expect(await talk.sendRaw(scan(3 * MB))).toBe('552 5.3.4 Message too large for Gmail: 1 MB max (this one 3 MB)');
    // A recipient elsewhere does not make it fit: ops@example.com could never get it.
    expect(await talk.cmd('RSET')).toMatch(/^250 /);
    expect(await talk.cmd('MAIL FROM:<scanner@office.test>')).toMatch(/^250 /);
    expect(await talk.cmd('RCPT TO:<archive@files.test>')).toMatch(/^250 /);
    expect(await talk.cmd('RCPT TO:<ops@example.com>')).toMatch(/^250 /);
    expect(await talk.cmd('DATA')).toMatch(/^354 /);
    talk.socket.write(scan(2 * MB, 'Scan 0002'));
    expect(await talk.next()).toBe('552 5.3.4 Message too large for Gmail: 1 MB max (this one 2 MB)');
    await talk.quit();
    await expectNothingKept(app, dir);
    expect(up.connections).toBe(0);
    await up.close();
  });

  it('takes a message that fits a later upstream of its route, which carries it; the first never hears of it', async () => {
    const small = await TestUpstream.start();
    const large = await TestUpstream.start();
    const dir = tempDir();
    const { app, port } = await startRelay(
      relayConfig(dir, { upstreams: [smtpUpstream('small', small.port, { max_message_bytes: '1MB' }), smtpUpstream('large', large.port)] }),
    );
    const talk = await talkTo(port);
    await talk.cmd('EHLO mfp');
    const reply = await talk.sendRaw(scan(2 * MB));
    expect(reply).toMatch(/^250 .*queued as (\d+)/);
    const id = Number(/queued as (\d+)/.exec(reply)![1]);
    // A small one still takes the primary.
    expect(await talk.sendRaw(scan(10_000, 'Note'))).toMatch(/^250 /);
    await talk.quit();
    await large.waitForMessages(1, 30_000);
    await small.waitForMessages(1, 30_000);
    expect(large.messages[0]!.size).toBeGreaterThan(2 * MB);
    expect(small.messages.map((m) => m.size)).toEqual([expect.any(Number)]);
    expect(small.messages[0]!.size).toBeLessThan(MB);
    await waitFor(() => app.spool.db.prepare('SELECT state FROM messages WHERE id = ?').pluck().get(id) === 'delivered', 30_000, 'the delivery');
    const detail = (await (await fetch(`http://127.0.0.1:${app.httpAddress!.port}/api/messages/${id}`)).json()) as { state: string; history: { event: string; upstream: string | null }[] };
    expect(detail.history.map((h) => [h.event, h.upstream])).toEqual([
      ['accepted', null],
      ['delivered', 'large'],
    ]);
    // Not a failure of the small upstream: it stays ok.
    const status = (await (await fetch(`http://127.0.0.1:${app.httpAddress!.port}/api/status`)).json()) as { upstreams: Record<string, { state: string }> };
    expect(status.upstreams.small?.state).toBe('ok');
    await small.close();
    await large.close();
  });

  it('fails a queued message that no upstream of its route takes any more, with the reason and a hint, and does not retry it', async () => {
    const dir = tempDir();
    const up = await TestUpstream.start();
    await up.stop(); // an outage: the message waits in the spool
    const first = await startRelay(relayConfig(dir, { upstreams: [smtpUpstream('office', up.port)] }));
    const talk = await talkTo(first.port);
    await talk.cmd('EHLO mfp');
    const reply = await talk.sendRaw(scan(2 * MB));
    const id = Number(/queued as (\d+)/.exec(reply)![1]);
    await talk.quit();
    await waitFor(() => first.app.spool.db.prepare("SELECT count(*) FROM messages WHERE state = 'deferred'").pluck().get() === 1, 30_000, 'a deferral');
    await first.app.stop();

    // The config changes: the upstream now takes 1 MB at most.
    await up.restart();
    const second = await startRelay(relayConfig(dir, { upstreams: [smtpUpstream('office', up.port, { max_message_bytes: '1MB' })] }));
    const base = `http://127.0.0.1:${second.app.httpAddress!.port}`;
    await waitFor(() => second.app.spool.db.prepare('SELECT state FROM messages WHERE id = ?').pluck().get(id) === 'failed', 30_000, 'the failure');
    const detail = (await (await fetch(`${base}/api/messages/${id}`)).json()) as { last_reply: string; hint: string; attempts: number };
    expect(detail.last_reply).toBe('552 5.3.4 Message too large for office: 1 MB max (this one 2 MB)');
    expect(detail.hint).toMatch(/^relaybox did not send it: no upstream of its route takes a message this large \(max_message_bytes; office takes the most\)/);
    expect(up.connections).toBe(0);
    await up.close();
  });
});
