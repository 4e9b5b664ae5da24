import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { RelayApp } from '../src/app.js';
import { validateConfig } from '../src/config/load.js';
import { listMessages } from '../src/spool/log.js';
import { relayConfig, runCli, sendMail, spawnRelay, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const TOKEN = 'correct-horse-battery-staple';

function base(app: RelayApp): string {
  return `http://127.0.0.1:${app.httpAddress!.port}`;
}

function smtpUpstream(port: number) {
  return [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port, security: 'none' }];
}

async function json(res: Response): Promise<any> {
  return res.json();
}

/** fetch() will not send a Host of our choosing; node:http will. */
function statusWithHost(app: RelayApp, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: app.httpAddress!.port, path: '/api/status', headers: { Host: host } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject).end();
  });
}

async function poll<T>(probe: () => Promise<T | false>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ROUTES: [string, string][] = [
  ['GET', '/api/messages'],
  ['GET', '/api/messages/1'],
  ['POST', '/api/messages/1/retry'],
  ['DELETE', '/api/messages/1'],
  ['GET', '/api/log.csv'],
  ['POST', '/api/send'],
  ['GET', '/api/status'],
  ['GET', '/metrics'],
];

describe('HTTP API', () => {
  it('is on 127.0.0.1:8025 by default, can be turned off, and refuses a non-loopback listen without a token', () => {
    const dir = tempDir();
    const plain = validateConfig({ data_dir: dir, upstreams: [{ name: 'o', type: 'file', dir }] });
    expect(plain.http).toEqual({ enabled: true, listen: { host: '127.0.0.1', port: 8025 }, admin_token: '' });
    expect(() => validateConfig(relayConfig(dir, { http: { listen: '0.0.0.0:8025' } }))).toThrow(/http\.admin_token: required when http\.listen \(0\.0\.0\.0:8025\) is beyond loopback/);
    expect(validateConfig(relayConfig(dir, { http: { listen: '0.0.0.0:8025', admin_token: TOKEN } })).http.admin_token).toBe(TOKEN);
    expect(validateConfig(relayConfig(dir, { http: { listen: '0.0.0.0:8025', enabled: false } })).http.enabled).toBe(false);
    expect(() => validateConfig(relayConfig(dir, { http: { listen: '8025' } }))).toThrow(/http\.listen: expected host:port, got "8025"/);
  });

  it('exits 2 at start when http.listen is beyond loopback and there is no admin_token', async () => {
    const dir = tempDir();
    const file = join(dir, 'relaybox.yaml');
    writeFileSync(file, stringify(relayConfig(dir, { http: { listen: '0.0.0.0:0' } })));
    for (const command of ['serve', 'check-config']) {
      const run = await runCli([command, '--config', file]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/http\.admin_token: required when http\.listen \(0\.0\.0\.0:0\) is beyond loopback/);
    }
  });

  it('logs where it listens, and serves /healthz from the real service', async () => {
    const dir = tempDir();
    const relay = await spawnRelay(relayConfig(dir, { http: { admin_token: TOKEN } }), dir);
    const line = relay.lines.find((l) => l.includes('"msg":"http listening"'))!;
    const http = JSON.parse(line).http as string;
    expect(http).toMatch(/^127\.0\.0\.1:\d+$/);
    const health = await fetch(`http://${http}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect((await fetch(`http://${http}/api/status`)).status).toBe(401);
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  });

  it('answers 401 on every route but /healthz without the token, and serves them with it', async () => {
    const { app } = await startRelay(relayConfig(tempDir(), { http: { admin_token: TOKEN } }));
    for (const [method, path] of ROUTES) {
      const res = await fetch(base(app) + path, { method });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const wrong = await fetch(base(app) + path, { method, headers: { Authorization: 'Bearer nope' } });
      expect(wrong.status, `${method} ${path} with a wrong token`).toBe(401);
      // The right token forgets the failures: five in a row would lock this address out (429).
      await fetch(`${base(app)}/api/status`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    }
    const bearer = { Authorization: `Bearer ${TOKEN}` };
    expect((await fetch(`${base(app)}/healthz`)).status).toBe(200);
    expect((await fetch(`${base(app)}/api/messages`, { headers: bearer })).status).toBe(200);
    expect((await fetch(`${base(app)}/api/status`, { headers: bearer })).status).toBe(200);
    expect((await fetch(`${base(app)}/metrics`, { headers: bearer })).status).toBe(200);
    expect((await fetch(`${base(app)}/api/messages/99`, { headers: bearer })).status).toBe(404);
    // The page shell and its files hold no data: they load, and the page asks to log in.
    expect((await fetch(`${base(app)}/`)).status).toBe(200);
    expect(await json(await fetch(`${base(app)}/api/session`))).toEqual({ required: true, authenticated: false, csrf: '' });
  });

  it('logs the console in with a cookie, never the token, and wants the CSRF header on writes', async () => {
    const up = await TestUpstream.start();
    const { app } = await startRelay(relayConfig(tempDir(), { http: { admin_token: TOKEN }, upstreams: smtpUpstream(up.port) }));
    const wrong = await fetch(`${base(app)}/api/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: 'x' }) });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    const login = await fetch(`${base(app)}/api/login`, { method: 'POST', body: new URLSearchParams({ token: TOKEN }) });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^relaybox_session_\d+=[\w-]{40,};/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\//);
    expect(cookie).not.toContain(TOKEN);
    const { csrf } = await json(login);
    const session = { Cookie: cookie.split(';')[0]! };
    expect(await json(await fetch(`${base(app)}/api/session`, { headers: session }))).toEqual({ required: true, authenticated: true, csrf });
    expect((await fetch(`${base(app)}/api/messages`, { headers: session })).status).toBe(200);

    const send = (headers: Record<string, string>) =>
      fetch(`${base(app)}/api/send`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify({ to: 'a@example.com', subject: 's', text: 't' }) });
    expect((await send(session)).status).toBe(403);
    expect((await send({ ...session, 'X-Relaybox-CSRF': 'guess' })).status).toBe(403);
    expect((await send({ ...session, 'X-Relaybox-CSRF': csrf })).status).toBe(202);
    expect((await send({ Authorization: `Bearer ${TOKEN}` })).status).toBe(202); // a tool: not CSRF-able
    await up.waitForMessages(2);

    expect((await fetch(`${base(app)}/api/logout`, { method: 'POST', headers: session })).status).toBe(200);
    expect((await fetch(`${base(app)}/api/messages`, { headers: session })).status).toBe(401);
  });

  it('without a token serves loopback Hosts only and refuses cross-origin writes', async () => {
    const { app } = await startRelay(relayConfig(tempDir()));
    expect((await fetch(`${base(app)}/api/status`)).status).toBe(200);
    // DNS rebinding: evil.example resolving to 127.0.0.1 still names itself in Host.
    expect(await statusWithHost(app, 'evil.example:8025')).toBe(403);
    expect(await statusWithHost(app, `localhost:${app.httpAddress!.port}`)).toBe(200);
    const body = JSON.stringify({ to: 'a@example.com', subject: 's', text: 't' });
    const post = (headers: Record<string, string>) => fetch(`${base(app)}/api/send`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });
    expect((await post({ Origin: 'http://evil.example' })).status).toBe(403);
    expect((await post({ 'Sec-Fetch-Site': 'cross-site' })).status).toBe(403);
    expect((await post({ Origin: base(app), 'Sec-Fetch-Site': 'same-origin' })).status).toBe(202);
    expect((await post({})).status).toBe(202); // curl sends neither
  });

  it('sends mail from POST /api/send to the upstream, and explains bad input with 400', async () => {
    const up = await TestUpstream.start();
    const { app } = await startRelay(relayConfig(tempDir(), { upstreams: smtpUpstream(up.port), smtp: { allow_recipient_domains: ['example.com'] } }));
    const post = (body: unknown, type = 'application/json') =>
      fetch(`${base(app)}/api/send`, { method: 'POST', headers: { 'Content-Type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) });

    const res = await post({ to: ['ops@example.com', 'boss@example.com'], subject: 'UPS on battery 電源', text: 'Mains lost at 10:02.\nRuntime 14 min.' });
    expect(res.status).toBe(202);
    const { id } = await json(res);
    expect(res.headers.get('location')).toBe(`/api/messages/${id}`);
    const [got] = await up.waitForMessages(1);
    expect(got!.from).toBe('relaybox@relaybox.test.example');
    expect(got!.to.sort()).toEqual(['boss@example.com', 'ops@example.com']);
    const raw = got!.raw!.toString();
    expect(raw).toMatch(/^Message-ID: <[^>]+@relaybox\.test\.example>\r$/m);
    expect(raw).toContain('Runtime 14 min.');
    const detail = await poll(async () => {
      const d = await json(await fetch(`${base(app)}/api/messages/${id}`));
      return d.state === 'delivered' && d;
    });
    expect(detail).toMatchObject({ client: 'http api', subject: 'UPS on battery 電源', to: ['boss@example.com', 'ops@example.com'] });
    expect((await post({ to: 'x@example.com', subject: 's', text: 't', from: 'ups@example.com' })).status).toBe(202);
    await up.waitForMessages(2);
    expect(up.messages[1]!.from).toBe('ups@example.com');

    const bad = async (body: unknown, status = 400, type?: string) => {
      const r = await post(body, type);
      expect(r.status).toBe(status);
      return (await json(r)).error as string;
    };
    expect(await bad({ subject: 's', text: 't' })).toBe('to: is required');
    expect(await bad({ to: 5, subject: 's', text: 't' })).toBe('to: expected an address or a list of addresses');
    expect(await bad({ to: 'not an address', subject: 's', text: 't' })).toMatch(/to\[0\]: expected an email address like ops@example\.com, got "not an address"/);
    expect(await bad({ to: [], subject: 's', text: 't' })).toMatch(/at least one recipient/);
    expect(await bad({ to: 'a@example.com', subject: 5, text: 't' })).toMatch(/subject: expected a string/);
    expect(await bad({ to: 'a@example.com', subject: 's', text: 't', cc: 'x' })).toMatch(/cc: unknown key/);
    expect(await bad({ to: 'a@elsewhere.org', subject: 's', text: 't' })).toMatch(/relaying to a@elsewhere\.org denied/);
    expect(await bad('{"to": ')).toMatch(/not valid JSON/);
    expect(await bad('to=a@example.com', 415, 'application/x-www-form-urlencoded')).toMatch(/Content-Type: application\/json/);
    expect(await bad({ to: 'a@example.com', subject: 's', text: 'x'.repeat(1_100_000) }, 413)).toMatch(/larger than/);
    expect(up.messages).toHaveLength(2);
  });

  it('lists, filters, pages, shows, retries and drops messages', async () => {
    const up = await TestUpstream.start();
    up.failData(550, '5.7.1 Rejected by policy');
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: smtpUpstream(up.port) }));
    await sendMail(port, { to: ['a@example.com'], subject: 'Invoice 100%_done' });
    await sendMail(port, { from: 'printer@office.example', to: ['b@example.com'], subject: 'Toner low' });
    await waitFor(() => listMessages(app.spool.db, { status: 'failed' }).length === 2);
    const get = async (path: string) => json(await fetch(base(app) + path));

    const all = await get('/api/messages');
    expect(all.messages.map((m: any) => m.subject)).toEqual(['Toner low', 'Invoice 100%_done']);
    expect(all.next_before).toBeNull();
    expect(all.messages[0]).toMatchObject({ from: 'printer@office.example', to: ['b@example.com'], state: 'failed', upstream: 'primary', last_reply: '550 5.7.1 Rejected by policy' });
    expect((await get('/api/messages?q=printer@OFFICE')).messages).toHaveLength(1);
    expect((await get('/api/messages?q=b@example')).messages[0].subject).toBe('Toner low');
    expect((await get('/api/messages?q=100%25_')).messages[0].subject).toBe('Invoice 100%_done');
    expect((await get('/api/messages?q=%25')).messages).toHaveLength(1); // % is a character, not a wildcard
    expect((await get('/api/messages?status=delivered')).messages).toHaveLength(0);
    const page1 = await get('/api/messages?limit=1');
    expect(page1.messages).toHaveLength(1);
    const page2 = await get(`/api/messages?limit=1&before=${page1.next_before}`);
    expect(page2.messages[0].id).toBeLessThan(page1.messages[0].id);
    for (const query of ['status=sent', 'limit=0', 'limit=abc', 'before=-1']) {
      const res = await fetch(`${base(app)}/api/messages?${query}`);
      expect(res.status, query).toBe(400);
    }

    const [toner, invoice] = all.messages;
    const detail = await get(`/api/messages/${toner.id}`);
    expect(detail.headers).toContain('Subject: Toner low');
    expect(detail.history.map((h: any) => h.event)).toEqual(['accepted', 'failed']);
    expect(detail.recipients).toEqual([{ rcpt: 'b@example.com', state: 'failed', upstream: 'primary', reply: '550 5.7.1 Rejected by policy', hint: null }]);
    expect((await fetch(`${base(app)}/api/messages/abc`)).status).toBe(400);

    up.failData(null);
    const retry = await fetch(`${base(app)}/api/messages/${toner.id}/retry`, { method: 'POST' });
    expect(await json(retry)).toEqual({ ok: true, id: toner.id, state: 'queued' });
    await up.waitForMessages(1);
    await waitFor(() => listMessages(app.spool.db, { status: 'delivered' }).length === 1);
    const again = await fetch(`${base(app)}/api/messages/${toner.id}/retry`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect((await json(again)).error).toMatch(/is delivered and cannot be retried/);

    const drop = await fetch(`${base(app)}/api/messages/${invoice.id}`, { method: 'DELETE' });
    expect(await json(drop)).toEqual({ ok: true, id: invoice.id, state: 'dropped' });
    expect((await get(`/api/messages/${invoice.id}`)).state).toBe('dropped');
    expect((await fetch(`${base(app)}/api/messages/${invoice.id}`, { method: 'DELETE' })).status).toBe(409);
    expect((await fetch(`${base(app)}/api/messages/999`, { method: 'DELETE' })).status).toBe(404);
  });

  it('pages through thousands of messages by key, without repeats or gaps', async () => {
    const { app } = await startRelay(relayConfig(tempDir()));
    const db = app.spool.db;
    const insert = db.prepare(`INSERT INTO messages (received_at, queued_at, mail_from, subject, size, state, updated_at) VALUES (?, ?, ?, ?, 100, 'delivered', ?)`);
    const rcpt = db.prepare(`INSERT INTO recipients (message_id, rcpt, state) VALUES (?, ?, 'delivered')`);
    db.transaction(() => {
      for (let i = 0; i < 5000; i++) {
        const id = Number(insert.run(i, i, `dev${i % 7}@example.com`, `scan ${i}`, i).lastInsertRowid);
        rcpt.run(id, `user${i % 13}@example.com`);
      }
    })();
    const seen: number[] = [];
    let before: number | null | undefined;
    do {
      const page = await json(await fetch(`${base(app)}/api/messages?limit=500${before ? `&before=${before}` : ''}`));
      seen.push(...page.messages.map((m: any) => m.id));
      before = page.next_before;
    } while (before);
    expect(seen).toHaveLength(5000);
    expect(new Set(seen).size).toBe(5000);
    expect(seen).toEqual([...seen].sort((a, b) => b - a));
    // Keyset paging: the deepest page costs what the first one does (no OFFSET to skip over).
    // The fastest of many runs of each, so a busy machine does not decide the outcome.
    const fastest = (query: Parameters<typeof listMessages>[1]) => {
      let best = Infinity;
      for (let i = 0; i < 30; i++) {
        const started = performance.now();
        listMessages(db, query);
        best = Math.min(best, performance.now() - started);
      }
      return best;
    };
    expect(fastest({ limit: 50, before: 60 })).toBeLessThan(fastest({ limit: 50 }) * 3 + 2);
    const plan = db.prepare(`EXPLAIN QUERY PLAN SELECT id FROM messages m WHERE m.state != 'receiving' AND m.id < ? ORDER BY m.id DESC LIMIT 50`).all(100) as { detail: string }[];
    expect(plan.map((p) => p.detail).join(' ')).toMatch(/USING INTEGER PRIMARY KEY/);
    const text = await json(await fetch(`${base(app)}/api/messages?q=user12@&limit=1000`));
    expect(text.messages.length).toBe(Math.ceil((5000 - 12) / 13));
  });

  it('reports health as 503 with the reason when the spool cannot take mail', async () => {
    const { app } = await startRelay(relayConfig(tempDir()));
    const status = await json(await fetch(`${base(app)}/api/status`));
    expect(status).toMatchObject({ state: 'ok', queue: { queued: 0, deferred: 0, failed: 0, oldest_age_s: 0 }, upstreams: { outbox: { state: 'unknown' } } });
    expect((await fetch(`${base(app)}/healthz`, { method: 'HEAD' })).status).toBe(200);
    app.spool.db.close(); // what a dead disk looks like from here
    const res = await fetch(`${base(app)}/healthz`);
    expect(res.status).toBe(503);
    expect(await json(res)).toEqual({ status: 'unavailable', reason: 'the spool database is closed' });
    const url = `${base(app)}/healthz`;
    await app.stop();
    await expect(fetch(url)).rejects.toThrow(); // stopped: nothing listens
  });
});
