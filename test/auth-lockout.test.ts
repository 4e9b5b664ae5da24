import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { hashPassword } from '../src/ingress/passwords.js';
import type { RelayApp } from '../src/app.js';
import { SmtpTalk } from './ingress-harness.js';
import { Mosquitto, Watcher } from './helpers/mosquitto.js';
import { relayConfig, startRelay } from './helpers/relay.js';
import { tempDir } from './helpers/tmp.js';

const TOKEN = 'test-admin-token-0123456789abcdef';
const P = 'relaybox/relaybox_test_example';
const b64 = (text: string) => Buffer.from(text).toString('base64');

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request from a chosen 127.x.y.z: the throttle counts per client address. */
function call(app: RelayApp, path: string, options: { token?: string; from?: string; method?: string; body?: string } = {}): Promise<Reply> {
  const { host, port } = app.httpAddress!;
  const headers: Record<string, string> = options.token ? { Authorization: `Bearer ${options.token}` } : {};
  if (options.body) headers['Content-Type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: options.method ?? 'GET', headers, localAddress: options.from ?? '127.0.0.1' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

function metric(text: string, line: string): number {
  const m = new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

describe('password guessing, seen from outside', () => {
  it('an SMTP lockout reaches MQTT <p>/events, /metrics and the console status', async () => {
    const broker = await Mosquitto.start();
    const users = [{ username: 'scanner', password_hash: await hashPassword('s3cret!') }];
    const { app, port } = await startRelay(
      relayConfig(tempDir(), { smtp: { listen: ['127.0.0.1:0'], tls: { mode: 'none' }, auth: { required: true, users } }, http: { admin_token: TOKEN }, mqtt: { url: broker.url } }),
    );
    const watcher = await Watcher.connect(broker.url, [`${P}/#`]);
    await watcher.waitFor((w) => w.last(`${P}/availability`)?.text === 'online', 10_000, 'online');

    const { talk } = await SmtpTalk.open(port);
    await talk.cmd('EHLO guesser');
    const replies: string[] = [];
    for (let i = 0; i < 5; i++) replies.push(await talk.cmd(`AUTH PLAIN ${b64(`\0scanner\0wrong-${i}`)}`));
    expect(replies[4]).toMatch(/^421 4\.7\.0 /);
    talk.socket.destroy();

    const event = await watcher.waitFor(
      (w) => w.on(`${P}/events`).map((s) => JSON.parse(s.text)).find((e) => e.event === 'auth_locked'),
      10_000,
      'an auth_locked event',
    );
    expect(event).toEqual({ event: 'auth_locked', service: 'smtp', client: '127.0.0.1', until: expect.any(String), at: expect.any(String) });
    expect(Date.parse(event.until) - Date.parse(event.at)).toBe(60_000);

    const metrics = (await call(app, '/metrics', { token: TOKEN })).body;
    expect(metric(metrics, 'relaybox_auth_failures_total{service="smtp"}')).toBe(5);
    expect(metric(metrics, 'relaybox_auth_lockouts_total{service="smtp"}')).toBe(1);
    expect(metric(metrics, 'relaybox_auth_lockouts_total{service="http"}')).toBe(0);
    const status = JSON.parse((await call(app, '/api/status', { token: TOKEN })).body);
    expect(status.auth_lockouts).toEqual([{ service: 'smtp', client: '127.0.0.1', until: event.until }]);
  });

  it('the admin token: 429 with Retry-After after 5 wrong ones, even for the right one; another address still gets in', async () => {
    const { app } = await startRelay(relayConfig(tempDir(), { http: { admin_token: TOKEN } }));
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await call(app, '/api/status', { token: `wrong-${i}` })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 429]);

    const right = await call(app, '/api/status', { token: TOKEN });
    expect(right.status).toBe(429);
    expect(Number(right.headers['retry-after'])).toBeGreaterThan(50);
    expect(Number(right.headers['retry-after'])).toBeLessThanOrEqual(60);
    const login = await call(app, '/api/login', { method: 'POST', body: JSON.stringify({ token: TOKEN }) });
    expect(login.status).toBe(429);
    expect(login.headers['retry-after']).toBeDefined();

    expect((await call(app, '/api/status', { token: TOKEN, from: '127.0.0.2' })).status).toBe(200);
    const metrics = (await call(app, '/metrics', { token: TOKEN, from: '127.0.0.2' })).body;
    expect(metric(metrics, 'relaybox_auth_failures_total{service="http"}')).toBe(5);
    expect(metric(metrics, 'relaybox_auth_lockouts_total{service="http"}')).toBe(1);
  });
});
