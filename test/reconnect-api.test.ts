import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { RelayApp } from '../src/app.js';
import { ReconnectFlows } from '../src/oauth/reconnect.js';
import { signInTarget } from '../src/oauth/signIn.js';
import { validateConfig } from '../src/config/load.js';
import { getMessage } from '../src/spool/log.js';
import { FakeOauth, MICROSOFT_ERRORS, type FakeOauthOptions } from './helpers/fakeOauth.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const TOKEN = 'reconnect-admin-token';
const GOOGLE_CLIENT = 'desktop.apps.googleusercontent.com';
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((thing) => thing.close()));
});

/** A fake provider, an SMTP upstream that takes only its tokens, and relaybox whose retries wait an hour. */
async function world(fakeOptions: FakeOauthOptions, upstream: Record<string, unknown>, style: 'google' | 'microsoft', rights: { granted: boolean } = { granted: true }) {
  const fake = await FakeOauth.start(fakeOptions);
  const server = await TestUpstream.start({ tls: true, requireTls: true, xoauth2: (user, token) => rights.granted && fake.accepts(user, token), xoauth2Style: style });
  open.push(fake, server);
  const dir = tempDir();
  const ca = join(dir, 'upstream-ca.pem');
  writeFileSync(ca, server.cert!);
  const raw = relayConfig(dir, {
    http: { listen: '127.0.0.1:0', admin_token: TOKEN },
    upstreams: [{ ...upstream, host: '127.0.0.1', port: server.port, tls: { ca }, token_url: fake.tokenUrl, ...(style === 'google' ? { auth_url: fake.authUrl } : {}) }],
    // Without the reconnect, deferred mail would wait an hour: a prompt delivery is its doing.
    delivery: { retry: { first: '1h', max: '1h', give_up_after: '2d' }, shutdown_grace: '2s' },
  });
  const { app, port } = await startRelay(raw);
  return { fake, server, dir, app, port, base: `http://127.0.0.1:${app.httpAddress!.port}` };
}

const bearer = { Authorization: `Bearer ${TOKEN}` };

async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = bearer) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as Record<string, any> };
}

/** Polls an async probe (the API) until it gives something. */
async function until<T>(probe: () => Promise<T | false>, what: string, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function deferredMail(app: RelayApp, port: number, upstream: string): Promise<number> {
  const sent = await sendMail(port, { to: ['office@example.com'] });
  const id = Number(/queued as (\d+)/.exec(sent.response)![1]);
  await waitFor(() => getMessage(app.spool.db, id)?.state === 'deferred', 30_000, 'the message deferred');
  await waitFor(() => app.status.upstream(upstream)?.state === 'auth_failed', 10_000, 'the upstream auth_failed');
  return id;
}

const gmail = { name: 'gmail', type: 'gmail-oauth2', user: 'scanner@example.com', client_id: GOOGLE_CLIENT, client_secret: 'desktop-secret', refresh_token: '1//revoked' };
const m365 = { name: 'm365', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', client_id: 'public-app' };

describe('Reconnect over the HTTP API', () => {
  it('Google: the pasted address with the right state stores the token (0600), the upstream leaves auth_failed and its deferred mail goes out', async () => {
    const { fake, server, dir, app, port, base } = await world({ clients: { [GOOGLE_CLIENT]: 'desktop-secret' } }, gmail, 'google');
    const id = await deferredMail(app, port, 'gmail');

    const list = await call(base, 'GET', '/api/reconnect');
    expect(list.json.upstreams).toEqual([{ upstream: 'gmail', provider: 'google', flow: 'paste', has_token: true, state: null }]);

    const started = await call(base, 'POST', '/api/upstreams/gmail/reconnect');
    expect(started.status).toBe(201);
    expect(started.json).toMatchObject({ flow: 'paste', state: 'waiting', upstream: 'gmail' });
    const authorize = new URL(started.json.authorize_url);
    expect(authorize.origin + authorize.pathname).toBe(fake.authUrl);
    expect(authorize.searchParams.get('redirect_uri')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(started.text).not.toMatch(/verifier/i);
    expect(Date.parse(started.json.expires_at) - Date.now()).toBeGreaterThan(9 * 60_000);

    // One sign-in per upstream at a time.
    const again = await call(base, 'POST', '/api/upstreams/gmail/reconnect');
    expect(again.status).toBe(409);
    expect(again.json.error).toMatch(/already under way/);

    // The person signs in; the browser ends on the loopback address that cannot be reached.
    const consent = await fetch(started.json.authorize_url, { redirect: 'manual' });
    const landed = consent.headers.get('location')!;
    expect(landed).toMatch(/code=/);

    const forged = new URL(landed);
    forged.searchParams.set('state', 'another-run');
    const wrong = await call(base, 'POST', '/api/upstreams/gmail/reconnect/complete', { redirect_url: forged.toString() });
    expect(wrong.status).toBe(400);
    expect(wrong.json.error).toMatch(/another sign-in \(its state does not match/);
    expect(wrong.json.reason).toBe('state_mismatch');
    const noCode = await call(base, 'POST', '/api/upstreams/gmail/reconnect/complete', { redirect_url: 'http://127.0.0.1:1/?state=x' });
    expect(noCode.json.error).toMatch(/no code= in it/);
    expect((await call(base, 'GET', '/api/upstreams/gmail/reconnect')).json.state).toBe('waiting');

    const done = await call(base, 'POST', '/api/upstreams/gmail/reconnect/complete', { redirect_url: landed });
    expect(done.status).toBe(200);
    expect(done.json).toMatchObject({ state: 'done', words: expect.stringMatching(/^connected/) });
    const file = join(dir, 'oauth', 'gmail.refresh.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { refresh_token: string };
    expect(stored.refresh_token).toMatch(/^1\/\/fake-refresh-/);
    expect(done.text).not.toContain(stored.refresh_token);
    expect(done.text).not.toContain(new URL(landed).searchParams.get('code')!);
    expect(app.status.upstream('gmail')?.state).not.toBe('auth_failed');

    const delivered = await waitFor(() => getMessage(app.spool.db, id)?.state === 'delivered', 30_000, 'the deferred message delivered');
    expect(delivered).toBe(true);
    expect(server.messages.at(-1)).toMatchObject({ authUser: 'scanner@example.com', to: ['office@example.com'] });
    expect(app.status.upstream('gmail')?.state).toBe('ok');
    expect(fake.requests.map((r) => r.grant)).toContain('authorization_code');
    expect((await call(base, 'GET', '/api/reconnect')).json.upstreams[0]).toMatchObject({ has_token: true, state: 'done' });
  }, 120_000);

  it('the delivery thread drops the access token it holds from before the sign-in: no refused login after Reconnect', async () => {
    // Gmail refuses every token (the account lacked a right); the person fixes it and signs in again.
    const rights = { granted: false };
    const { fake, server, app, port, base } = await world({ clients: { [GOOGLE_CLIENT]: 'desktop-secret' } }, { ...gmail, refresh_token: '1//valid' }, 'google', rights);
    fake.addRefreshToken('1//valid', { user: 'scanner@example.com', clientId: GOOGLE_CLIENT });
    const id = await deferredMail(app, port, 'gmail');
    const refusedBefore = server.tokenRefusals;
    expect(refusedBefore).toBe(2); // a token, and a fresh one: both refused
    rights.granted = true;
    const started = await call(base, 'POST', '/api/upstreams/gmail/reconnect');
    const landed = (await fetch(started.json.authorize_url, { redirect: 'manual' })).headers.get('location')!;
    // The tokens of the old sign-in are gone at Google; the thread still holds one that looks good for an hour.
    fake.expireAccessTokens();
    expect((await call(base, 'POST', '/api/upstreams/gmail/reconnect/complete', { redirect_url: landed })).json.state).toBe('done');
    await waitFor(() => getMessage(app.spool.db, id)?.state === 'delivered', 30_000, 'the deferred message delivered');
    expect(server.tokenRefusals).toBe(refusedBefore);
  }, 120_000);

  it('Microsoft: the device code is polled until the person signs in, and mail waiting for a first token goes out', async () => {
    const fake = { clients: { 'public-app': null }, deviceUser: 'scanner@contoso.com', deviceWaits: ['authorization_pending', 'authorization_pending'] as Array<'authorization_pending'> };
    const { dir, app, port, base } = await world(fake, m365, 'microsoft');
    const id = await deferredMail(app, port, 'm365');
    expect((await call(base, 'GET', '/api/reconnect')).json.upstreams).toEqual([{ upstream: 'm365', provider: 'microsoft', flow: 'device', has_token: false, state: null }]);

    const started = await call(base, 'POST', '/api/upstreams/m365/reconnect');
    expect(started.status).toBe(201);
    expect(started.json).toMatchObject({ flow: 'device', state: 'waiting', user_code: 'ABCD-EFGH', verification_uri: expect.stringMatching(/\/device$/) });
    expect(started.json.expires_in_s).toBeGreaterThan(590);
    expect(started.text).not.toMatch(/device-[0-9a-f]{16}/); // the device code stays on the box

    const done = await until(async () => {
      const view = await call(base, 'GET', '/api/upstreams/m365/reconnect');
      return view.json.state !== 'waiting' && view.json;
    }, 'the sign-in finished');
    expect(done).toMatchObject({ state: 'done' });
    expect(done.user_code).toBeUndefined();
    expect(statSync(join(dir, 'oauth', 'm365.refresh.json')).mode & 0o777).toBe(0o600);
    await waitFor(() => getMessage(app.spool.db, id)?.state === 'delivered', 30_000, 'the waiting message delivered');
    expect((await call(base, 'GET', '/api/reconnect')).json.upstreams[0].has_token).toBe(true);
  }, 120_000);

  it('a device code nobody uses fails with words when it expires; a cancel ends a sign-in', async () => {
    const fake = { clients: { 'public-app': null }, deviceExpiresIn: 3, deviceWaits: Array(50).fill('authorization_pending') as Array<'authorization_pending'> };
    const { base } = await world(fake, m365, 'microsoft');
    const started = await call(base, 'POST', '/api/upstreams/m365/reconnect');
    expect(started.json.expires_in_s).toBeLessThanOrEqual(3);
    const failed = await until(async () => {
      const view = await call(base, 'GET', '/api/upstreams/m365/reconnect');
      return view.json.state !== 'waiting' && view.json;
    }, 'the code expired');
    expect(failed).toMatchObject({ state: 'failed', words: 'the code was not used within 3 seconds: press Reconnect for a new one' });

    expect((await call(base, 'POST', '/api/upstreams/m365/reconnect')).status).toBe(201);
    const cancelled = await call(base, 'DELETE', '/api/upstreams/m365/reconnect');
    expect(cancelled.json).toMatchObject({ state: 'failed', words: 'cancelled by a person' });
    expect((await call(base, 'DELETE', '/api/upstreams/m365/reconnect')).status).toBe(409);
  }, 120_000);

  it('a refused sign-in says the fix in the words the CLI uses, with the button instead of the command (AADSTS7000218)', async () => {
    const fake = { clients: { 'public-app': null }, tokenErrors: { device_code: MICROSOFT_ERRORS.publicClientOff } };
    const { dir, base } = await world(fake, m365, 'microsoft');
    expect((await call(base, 'POST', '/api/upstreams/m365/reconnect')).status).toBe(201);
    const failed = await until(async () => {
      const view = await call(base, 'GET', '/api/upstreams/m365/reconnect');
      return view.json.state !== 'waiting' && view.json;
    }, 'the refusal');
    expect(failed).toMatchObject({ state: 'failed' });
    expect(failed.words).toBe(
      'Microsoft refused the sign-in: the app registration does not allow public client flows. Entra admin center > App registrations > (your app) > Authentication > Advanced settings: set "Allow public client flows" to Yes, then press Reconnect again. Nothing was stored.',
    );
    expect(existsSync(join(dir, 'oauth', 'm365.refresh.json'))).toBe(false);
  }, 120_000);

  it('wants the admin token, and the CSRF header with a console cookie; names what cannot be reconnected', async () => {
    const { base } = await world({ clients: { [GOOGLE_CLIENT]: 'desktop-secret' } }, gmail, 'google');
    expect((await call(base, 'POST', '/api/upstreams/gmail/reconnect', undefined, {})).status).toBe(401);
    expect((await call(base, 'GET', '/api/upstreams/gmail/reconnect', undefined, {})).status).toBe(401);
    expect((await call(base, 'POST', '/api/upstreams/gmail/reconnect', undefined, { Authorization: 'Bearer wrong' })).status).toBe(401);

    const login = await fetch(`${base}/api/login`, { method: 'POST', body: new URLSearchParams({ token: TOKEN }) });
    const { csrf } = (await login.json()) as { csrf: string };
    const cookie = { Cookie: login.headers.get('set-cookie')!.split(';')[0]! };
    const noCsrf = await call(base, 'POST', '/api/upstreams/gmail/reconnect', undefined, cookie);
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.json.error).toMatch(/X-Relaybox-CSRF/);
    const withCsrf = await call(base, 'POST', '/api/upstreams/gmail/reconnect', undefined, { ...cookie, 'X-Relaybox-CSRF': csrf });
    expect(withCsrf.status).toBe(201);
    expect((await call(base, 'DELETE', '/api/upstreams/gmail/reconnect', undefined, cookie)).status).toBe(403);
    expect((await call(base, 'DELETE', '/api/upstreams/gmail/reconnect', undefined, { ...cookie, 'X-Relaybox-CSRF': csrf })).status).toBe(200);

    const unknown = await call(base, 'POST', '/api/upstreams/nope/reconnect');
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toBe('no upstream named "nope" (have: gmail)');
    const bad = await call(base, 'POST', '/api/upstreams/gmail/reconnect/complete', { url: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/^redirect_url: expected the whole address/);
  }, 120_000);
});

describe('Reconnect time limits', () => {
  it('a paste that never comes fails with words when its time is up', async () => {
    const config = validateConfig(relayConfig(tempDir(), { upstreams: [{ ...gmail, token_url: 'http://127.0.0.1:9/token', auth_url: 'http://127.0.0.1:9/authorize' }] }));
    const flows = new ReconnectFlows({ dataDir: config.data_dir, onConnected: () => undefined, pasteLimitMs: 2000 });
    const view = await flows.start(signInTarget(config.upstreams[0]!)!);
    expect(view.state).toBe('waiting');
    const failed = await waitFor(() => flows.view('gmail')?.state === 'failed' && flows.view('gmail'), 10_000);
    expect(failed).toMatchObject({ words: 'no address was pasted within 2 seconds: press Reconnect to start again' });
    expect(failed && failed.authorize_url).toBeUndefined();
    await expect(flows.complete('gmail', 'http://127.0.0.1:1/?code=x&state=y')).rejects.toThrow(/no sign-in for gmail is waiting \(it ended: no address was pasted/);
  }, 120_000);

  it('logs the sign-in without its code, verifier, state or tokens', async () => {
    const fake = await FakeOauth.start({ clients: { [GOOGLE_CLIENT]: 'desktop-secret' } });
    open.push(fake);
    const config = validateConfig(relayConfig(tempDir(), { upstreams: [{ ...gmail, token_url: fake.tokenUrl, auth_url: fake.authUrl }] }));
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    let connected = '';
    const flows = new ReconnectFlows({ dataDir: config.data_dir, logger, onConnected: (name) => (connected = name) });
    const view = await flows.start(signInTarget(config.upstreams[0]!)!);
    const landed = (await fetch(view.authorize_url!, { redirect: 'manual' })).headers.get('location')!;
    expect((await flows.complete('gmail', landed)).state).toBe('done');
    expect(connected).toBe('gmail');
    const log = lines.join('');
    expect(log).toContain('reconnect: new sign-in stored');
    const issued = fake.requests.find((r) => r.grant === 'authorization_code')!;
    for (const secret of [new URL(landed).searchParams.get('code')!, new URL(landed).searchParams.get('state')!, issued.params.code_verifier!, '1//fake-refresh-', 'ya29.']) {
      expect(log).not.toContain(secret);
    }
  });
});
