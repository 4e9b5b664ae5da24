import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayApp } from '../src/app.js';
import { listMessages } from '../src/spool/log.js';
import { parseConfig, validateConfig } from '../src/config/load.js';
import { configProblems, FILE_UPSTREAM } from './helpers/config.js';
import { relayConfig, spawnRelay, waitFor } from './helpers/relay.js';
import { Mosquitto, Watcher } from './helpers/mosquitto.js';
import { fillDisk, freeBytes, isRoot, smallDataDir, useSmallDisk } from './helpers/smallDisk.js';
import { TestUpstream } from './helpers/testUpstream.js';

const MB = 1024 * 1024;

function smtpUpstream(port: number) {
  return { name: 'primary', type: 'smtp', host: '127.0.0.1', port, security: 'none' };
}

/** One transaction on a raw socket, so that it shows at which command relaybox refused. */
async function transaction(port: number, options: { bytes?: number; size?: number; id?: string } = {}): Promise<{ stage: string; reply: string }> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  let buffer = '';
  const waiting: Array<(line: string) => void> = [];
  socket.on('data', (d) => {
    buffer += d.toString('latin1');
    for (let nl; (nl = buffer.indexOf('\r\n')) >= 0; ) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 2);
      if (/^\d{3} /.test(line)) waiting.shift()?.(line);
    }
  });
  const reply = () => new Promise<string>((resolve) => waiting.push(resolve));
  const send = (line: string) => {
    const r = reply();
    socket.write(`${line}\r\n`);
    return r;
  };
  try {
    await reply();
    await send('EHLO scanner.example.com');
    const mail = await send(`MAIL FROM:<scanner@example.com>${options.size ? ` SIZE=${options.size}` : ''}`);
    if (!mail.startsWith('250')) return { stage: 'MAIL', reply: mail };
    await send('RCPT TO:<ops@example.com>');
    const data = await send('DATA');
    if (!data.startsWith('354')) return { stage: 'DATA', reply: data };
    const line = `${'x'.repeat(78)}\r\n`;
    const body = `Subject: ${options.id ?? 'scan'}\r\n\r\n${line.repeat(Math.ceil((options.bytes ?? 1000) / line.length))}`;
    const end = reply();
    socket.write(`${body}.\r\n`);
    return { stage: 'end of DATA', reply: await end };
  } finally {
    socket.end('QUIT\r\n');
  }
}

async function healthz(httpPort: number): Promise<{ code: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
  return { code: res.status, body: await res.json() };
}

/** relaybox in this process, its log kept. */
async function startApp(raw: Record<string, unknown>): Promise<{ app: RelayApp; port: number; http: number; log: any[] }> {
  const log: any[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void log.push(JSON.parse(line)) });
  const app = await RelayApp.start(validateConfig(raw), logger);
  onTestFinished(() => app.stop());
  return { app, port: app.smtpAddresses[0]!.port, http: app.httpAddress!.port, log };
}

/** Tries `probe` until it says true (each try is a real transaction: no sleeping on a guess). */
async function eventually(probe: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

const subjects = (up: TestUpstream) => up.messages.map((m) => /^Subject: (\S+)/m.exec(m.raw!.toString())?.[1]);

describe('smtp.min_free_bytes', () => {
  it('takes 64MB, 512KB or a number of bytes, and names the key when it is wrong', () => {
    expect(parseConfig(`smtp: { min_free_bytes: 64MB }\n${FILE_UPSTREAM}`).smtp.min_free_bytes).toBe(64 * MB);
    expect(parseConfig(`smtp: { min_free_bytes: 512KB }\n${FILE_UPSTREAM}`).smtp.min_free_bytes).toBe(512 * 1024);
    expect(parseConfig(`smtp: { min_free_bytes: 1000000 }\n${FILE_UPSTREAM}`).smtp.min_free_bytes).toBe(1_000_000);
    expect(parseConfig(FILE_UPSTREAM).smtp.min_free_bytes).toBeUndefined(); // the default depends on the filesystem
    expect(configProblems(`smtp: { min_free_bytes: lots }\n${FILE_UPSTREAM}`)).toEqual([
      'smtp.min_free_bytes: expected a size like 64MB, 512KB or a number of bytes, got "lots"',
    ]);
  });
});

describe.skipIf(!isRoot)('a full disk (data_dir on a 20 MB tmpfs)', () => {
  useSmallDisk();

  it('refuses new mail with 452 4.3.1 before the disk is full, and delivers every message it took once the upstream is back', async () => {
    const up = await TestUpstream.start();
    onTestFinished(() => up.close());
    await up.stop(); // the upstream is away
    const { app, port, http } = await startApp(relayConfig(smallDataDir(), { upstreams: [smtpUpstream(up.port)] }));

    // SIZE= that cannot fit is refused at once, while smaller mail is taken.
    expect(await transaction(port, { size: freeBytes() })).toEqual({ stage: 'MAIL', reply: expect.stringMatching(/^452 4\.3\.1 /) });
    expect((await transaction(port, { size: 2000, bytes: 1000, id: 'sized' })).reply).toMatch(/^250 /);

    const accepted: string[] = ['sized'];
    let refusal: { stage: string; reply: string } | undefined;
    for (let i = 0; i < 40 && !refusal; i++) {
      const r = await transaction(port, { bytes: MB, id: `m${i}` });
      if (r.reply.startsWith('250')) accepted.push(`m${i}`);
      else refusal = r;
    }
    expect(refusal).toEqual({ stage: 'MAIL', reply: expect.stringMatching(/^452 4\.3\.1 /) });
    expect(accepted.length).toBeGreaterThanOrEqual(11);
    expect(freeBytes()).toBeGreaterThan(0); // refused before the disk was full

    const status = app.status.snapshot();
    expect(status.state).not.toBe('ok'); // degraded, or down while the upstream's failures have been seen
    expect(status.disk).toMatchObject({ accepting: false, min_free_bytes: 2 * MB });
    const health = await healthz(http);
    expect(health.code).toBe(503);
    expect(health.body).toMatchObject({ status: 'degraded', free_bytes: expect.any(Number), min_free_bytes: 2 * MB });
    expect(health.body.reason).toMatch(/MB free/);

    await up.restart();
    await up.waitForMessages(accepted.length, 60_000);
    expect(new Set(subjects(up))).toEqual(new Set(accepted)); // every 250 arrived, nothing else

    // Each delivered body freed room in the spool: mail is taken again, no restart.
    expect(await eventually(async () => (await transaction(port, { bytes: 1000, id: 'again' })).reply.startsWith('250'), 30_000)).toBe(true);
  });

  it('stays up when something else fills the disk, goes on delivering, and takes mail again once that file is gone', async () => {
    const up = await TestUpstream.start();
    onTestFinished(() => up.close());
    await up.stop();
    const broker = await Mosquitto.start();
    const { app, port, http, log } = await startApp(relayConfig(smallDataDir(), { upstreams: [smtpUpstream(up.port)], mqtt: { url: broker.url } }));
    const watcher = await Watcher.connect(broker.url, ['relaybox/+/status']);
    const mqttStatus = (w: Watcher) => {
      const last = w.last('relaybox/relaybox_test_example/status');
      return last && JSON.parse(last.text);
    };
    for (const id of ['q1', 'q2', 'q3']) expect((await transaction(port, { bytes: 20_000, id })).reply).toMatch(/^250 /);

    const filler = fillDisk();
    for (let i = 0; i < 3; i++) expect(await transaction(port, { bytes: 1000 })).toEqual({ stage: 'MAIL', reply: expect.stringMatching(/^452 4\.3\.1 /) });
    const health = await healthz(http);
    expect(health).toMatchObject({ code: 503, body: { status: 'degraded', free_bytes: expect.any(Number) } });
    expect(health.body.free_bytes).toBeLessThan(2 * MB);
    const api = await fetch(`http://127.0.0.1:${http}/api/send`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ to: ['ops@example.com'], subject: 'webhook', text: 'hello' }),
    });
    expect(api.status).toBe(503); // the webhook route refuses like SMTP does
    expect(api.headers.get('retry-after')).toBe('60');
    const metrics = await (await fetch(`http://127.0.0.1:${http}/metrics`)).text();
    expect(metrics).toMatch(/^relaybox_accepting_mail 0$/m);
    expect(Number(/^relaybox_disk_free_bytes (\d+)$/m.exec(metrics)?.[1])).toBeLessThan(2 * MB);
    const degraded = await watcher.waitFor((w) => mqttStatus(w)?.disk?.accepting === false && mqttStatus(w), 10_000, 'MQTT status: disk full');
    // `down` once the away upstream's failures are seen (it outranks `degraded`); the disk says why mail is refused.
    expect(degraded).toMatchObject({ state: expect.stringMatching(/^(degraded|down)$/), disk: { free_bytes: expect.any(Number), min_free_bytes: 2 * MB, reason: expect.stringMatching(/MB free/) } });

    // Delivery goes on on the full disk.
    await up.restart();
    await up.waitForMessages(3, 30_000);
    await waitFor(() => app.status.snapshot().queue.queued + app.status.snapshot().queue.deferred === 0, 20_000, 'the queue to empty');
    expect(subjects(up).sort()).toEqual(['q1', 'q2', 'q3']);
    expect(app.status.snapshot()).toMatchObject({ state: 'degraded', upstreams: { primary: { state: 'ok' } }, disk: { accepting: false } });

    rmSync(filler);
    expect(await eventually(async () => (await transaction(port, { bytes: 1000, id: 'after' })).reply.startsWith('250'), 15_000)).toBe(true);
    expect(await healthz(http)).toEqual({ code: 200, body: { status: 'ok' } });
    await watcher.waitFor((w) => mqttStatus(w)?.disk?.accepting === true, 10_000, 'MQTT status: taking mail again');
    // One warning when it began, one info line when it ended: not a line per refused message.
    expect(log.filter((l) => /disk nearly full/.test(l.msg))).toHaveLength(1);
    expect(log.filter((l) => /disk has room again/.test(l.msg))).toHaveLength(1);
    expect(log.filter((l) => l.level >= 50)).toEqual([]);
  });

  it('starts on a full disk: 452 4.3.1 to MAIL FROM, delivers what it holds, takes mail once there is room', async () => {
    const up = await TestUpstream.start();
    onTestFinished(() => up.close());
    await up.stop();
    const dataDir = smallDataDir();
    const raw = relayConfig(dataDir, { upstreams: [smtpUpstream(up.port)] });
    {
      const { app, port } = await startApp(raw);
      expect((await transaction(port, { bytes: 20_000, id: 'held' })).reply).toMatch(/^250 /);
      await app.stop();
    }
    const filler = fillDisk();
    const configDir = mkdtempSync(join(tmpdir(), 'relaybox-diskfull-config-'));
    onTestFinished(() => rmSync(configDir, { recursive: true, force: true }));
    const relay = await spawnRelay(raw, configDir); // the old code exited 1 here: "database or disk is full"
    const http = Number(/"http":"[^"]*:(\d+)"/.exec(relay.lines.find((l) => l.includes('http listening'))!)![1]);

    expect(await transaction(relay.port, { bytes: 1000 })).toEqual({ stage: 'MAIL', reply: expect.stringMatching(/^452 4\.3\.1 /) });
    expect(await healthz(http)).toMatchObject({ code: 503, body: { status: 'degraded' } });
    await up.restart();
    await up.waitForMessages(1, 30_000);
    expect(subjects(up)).toEqual(['held']);

    rmSync(filler);
    expect(await eventually(async () => (await transaction(relay.port, { bytes: 1000, id: 'after' })).reply.startsWith('250'), 15_000)).toBe(true);
    expect(relay.child.exitCode).toBeNull();
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  });

  it('answers 452 4.3.1 when a write fails for want of space anyway, keeps nothing of that message, and stays up', async () => {
    const up = await TestUpstream.start();
    onTestFinished(() => up.close());
    // min_free_bytes 0: nothing refuses early, so SQLite itself runs out of room mid-body.
    const { app, port } = await startApp(relayConfig(smallDataDir(), { upstreams: [smtpUpstream(up.port)], smtp: { min_free_bytes: 0 } }));
    expect((await transaction(port, { bytes: 1000, id: 'before' })).reply).toMatch(/^250 /);
    await up.waitForMessages(1, 10_000);
    const filler = fillDisk();
    const r = await transaction(port, { bytes: 2 * MB, id: 'toobig' });
    expect(r).toEqual({ stage: 'end of DATA', reply: expect.stringMatching(/^452 4\.3\.1 /) });
    rmSync(filler);
    expect(await eventually(async () => (await transaction(port, { bytes: 1000, id: 'after' })).reply.startsWith('250'), 15_000)).toBe(true);
    await up.waitForMessages(2, 10_000);
    expect(subjects(up)).toEqual(['before', 'after']);
    // Rolled back: no trace of the refused message, not even its partial body.
    await waitFor(() => (app.spool.db.prepare(`SELECT count(*) FROM messages WHERE state = 'receiving'`).pluck().get() as number) === 0, 15_000, 'the partial body to go');
    expect(app.spool.db.prepare(`SELECT count(*) FROM body_chunks`).pluck().get()).toBe(0);
    expect(listMessages(app.spool.db).map((m) => m.subject)).toEqual(['after', 'before']);
  });
});
