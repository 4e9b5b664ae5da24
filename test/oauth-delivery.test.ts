import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/load.js';
import type { GmailOauth2UpstreamConfig } from '../src/config/upstreams.js';
import { storeRefreshToken } from '../src/oauth/refreshStore.js';
import { tokenSourceFor } from '../src/oauth/sources.js';
import { getMessage } from '../src/spool/log.js';
import { OAuthSmtpUpstream } from '../src/upstreams/oauthSmtp.js';
import { UpstreamError } from '../src/upstreams/types.js';
import { FakeOauth, serviceAccountKeyJson, serviceAccountKeyPair, type FakeOauthOptions } from './helpers/fakeOauth.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream, type TestUpstreamOptions } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((thing) => thing.close()));
});

const USER = 'scanner@example.com';

/** A fake provider and an SMTP upstream that takes only its tokens, over STARTTLS with a pinned cert. */
async function world(fakeOptions: FakeOauthOptions, smtp: Partial<TestUpstreamOptions> = {}) {
  const fake = await FakeOauth.start(fakeOptions);
  const server = await TestUpstream.start({ tls: true, requireTls: true, xoauth2: (user, token) => fake.accepts(user, token), ...smtp });
  open.push(fake, server);
  const dir = tempDir();
  const ca = join(dir, 'upstream-ca.pem');
  writeFileSync(ca, server.cert!);
  const at = { host: '127.0.0.1', port: server.port, tls: { ca }, token_url: fake.tokenUrl };
  return { fake, server, dir, at };
}

function idOf(response: string): number {
  return Number(/queued as (\d+)/.exec(response)![1]);
}

async function deliveredVia(app: Awaited<ReturnType<typeof startRelay>>['app'], id: number) {
  return waitFor(() => {
    const m = getMessage(app.spool.db, id);
    return m?.state === 'delivered' && m;
  });
}

const google = { clients: { 'desktop.apps.googleusercontent.com': 'desktop-secret' } };
const gmail = { name: 'gmail', type: 'gmail-oauth2', user: USER, client_id: 'desktop.apps.googleusercontent.com', client_secret: 'desktop-secret' };

describe('XOAUTH2 delivery end to end', () => {
  it('gmail-oauth2 with a refresh token', async () => {
    const { fake, server, dir, at } = await world(google);
    fake.addRefreshToken('1//refresh', { user: USER, clientId: gmail.client_id });
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [{ ...gmail, ...at, refresh_token: '1//refresh' }] }));
    const id = idOf((await sendMail(port, { to: ['office@example.com'] })).response);
    const done = await deliveredVia(app, id);
    expect(done.history.at(-1)).toMatchObject({ event: 'delivered', upstream: 'gmail' });
    expect(server.messages[0]).toMatchObject({ authUser: USER, secure: true, to: ['office@example.com'] });
    expect(app.status.upstream('gmail')?.state).toBe('ok');
  });

  it('gmail-oauth2 with a Workspace service account', async () => {
    const { fake, server, dir, at } = await world({ serviceAccount: { clientEmail: 'relay@p.iam.gserviceaccount.com', publicKey: serviceAccountKeyPair().publicKey } });
    const key = join(dir, 'sa.json');
    writeFileSync(key, serviceAccountKeyJson('relay@p.iam.gserviceaccount.com', 'https://oauth2.googleapis.com/token'));
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [{ name: 'gmail', type: 'gmail-oauth2', user: USER, service_account_key: { file: key }, ...at }] }));
    await deliveredVia(app, idOf((await sendMail(port, { to: ['office@example.com'] })).response));
    expect(server.messages[0]!.authUser).toBe(USER);
    expect(fake.requests.map((r) => r.grant)).toEqual(['jwt-bearer']);
  });

  it('microsoft365-oauth2 app-only (client credentials)', async () => {
    const { fake, server, dir, at } = await world({ clients: { 'app-id': 'app-secret' } }, { xoauth2Style: 'microsoft' });
    const m365 = { name: 'm365', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', tenant_id: '11111111-2222-3333-4444-555555555555', client_id: 'app-id', client_secret: 'app-secret' };
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [{ ...m365, ...at }] }));
    await deliveredVia(app, idOf((await sendMail(port, { to: ['office@contoso.com'] })).response));
    expect(server.messages[0]!.authUser).toBe('scanner@contoso.com');
    expect(fake.requests.map((r) => r.grant)).toEqual(['client_credentials']);
  });

  it('microsoft365-oauth2 delegated, with the refresh token relaybox oauth microsoft stored', async () => {
    const { fake, server, dir, at } = await world({ clients: { 'public-app': null }, rotateRefreshTokens: true }, { xoauth2Style: 'microsoft' });
    fake.addRefreshToken('M.stored', { user: 'scanner@contoso.com', clientId: 'public-app' });
    await storeRefreshToken(dir, 'm365', { refreshToken: 'M.stored', clientId: 'public-app', scope: 'x', configured: undefined });
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [{ name: 'm365', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', client_id: 'public-app', ...at }] }));
    await deliveredVia(app, idOf((await sendMail(port, { to: ['office@contoso.com'] })).response));
    expect(server.messages[0]!.authUser).toBe('scanner@contoso.com');
    expect(fake.requests[0]!.params).toMatchObject({ grant_type: 'refresh_token', refresh_token: 'M.stored' });
  });

  for (const style of ['google', 'microsoft'] as const) {
    it(`a refused token is refreshed once and the mail goes out on the same attempt (${style} style)`, async () => {
      const { fake, server, dir, at } = await world(google, { xoauth2Style: style });
      fake.addRefreshToken('1//refresh', { user: USER, clientId: gmail.client_id });
      const { app, port } = await startRelay(relayConfig(dir, { upstreams: [{ ...gmail, ...at, refresh_token: '1//refresh' }] }));
      await deliveredVia(app, idOf((await sendMail(port, { to: ['a@example.com'] })).response));
      // The provider revokes the token it gave; relaybox still thinks it has 59 minutes left.
      fake.expireAccessTokens();
      server.dropConnections();
      const second = await deliveredVia(app, idOf((await sendMail(port, { to: ['b@example.com'] })).response));
      expect(second.attempts).toBe(1);
      expect(server.tokenRefusals).toBe(1);
      expect(fake.tokenRequests('refresh_token')).toBe(2);
    });
  }

  for (const style of ['google', 'microsoft'] as const) {
    it(`a fresh token refused too is an auth failure: deferred, upstream auth_failed, next upstream takes the mail (${style} style)`, async () => {
      const { fake, server, dir, at } = await world(google, { xoauth2: () => false, xoauth2Style: style });
      fake.addRefreshToken('1//refresh', { user: USER, clientId: gmail.client_id });
      const outbox = { name: 'outbox', type: 'file', dir: join(dir, 'outbox') };
      const { app, port } = await startRelay(relayConfig(dir, { upstreams: [{ ...gmail, ...at, refresh_token: '1//refresh' }, outbox] }));
      const done = await deliveredVia(app, idOf((await sendMail(port, { to: ['a@example.com'] })).response));
      expect(done.history.map((h) => [h.event, h.upstream])).toEqual([['accepted', null], ['deferred', 'gmail'], ['delivered', 'outbox']]);
      expect(done.history[1]!.reply).toMatch(/^535 .*Gmail refused a fresh token for scanner@example\.com/);
      expect(server.tokenRefusals).toBe(2);
      expect(fake.tokenRequests()).toBe(2);
      expect(app.status.upstream('gmail')).toMatchObject({ state: 'auth_failed' });
      expect(done.history[1]!.reply).not.toContain('ya29.');
    });
  }

  it('invalid_grant: the mail is kept (deferred), the reply says invalid_grant and what to run, the upstream is auth_failed', async () => {
    const { fake, server, dir, at } = await world(google);
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [{ ...gmail, ...at, refresh_token: '1//revoked' }] }));
    const id = idOf((await sendMail(port, { to: ['a@example.com'] })).response);
    const kept = await waitFor(() => {
      const m = getMessage(app.spool.db, id);
      return m?.state === 'deferred' && m;
    });
    const reply = 'invalid_grant: the refresh token was revoked or expired (a password change revokes Gmail tokens; an app in "Testing" status ends them after 7 days) — run: relaybox oauth google --upstream gmail';
    expect(kept.lastReply).toBe(reply);
    expect(app.status.upstream('gmail')).toMatchObject({ state: 'auth_failed', last_error: reply });
    expect(server.connections).toBe(0);

    // A person runs `relaybox oauth google`; the next retry uses the new token without a restart.
    fake.addRefreshToken('1//new', { user: USER, clientId: gmail.client_id });
    await storeRefreshToken(dir, 'gmail', { refreshToken: '1//new', clientId: gmail.client_id, scope: 'https://mail.google.com/', configured: '1//revoked' });
    await deliveredVia(app, id);
    expect(app.status.upstream('gmail')?.state).toBe('ok');
  });

  it('the access token survives a restart: the second run asks the token endpoint nothing', async () => {
    const { fake, server, dir, at } = await world(google);
    fake.addRefreshToken('1//refresh', { user: USER, clientId: gmail.client_id });
    const config = relayConfig(dir, { upstreams: [{ ...gmail, ...at, refresh_token: '1//refresh' }] });
    const first = await startRelay(config);
    await deliveredVia(first.app, idOf((await sendMail(first.port, { to: ['a@example.com'] })).response));
    await first.app.stop();
    const second = await startRelay(config);
    await deliveredVia(second.app, idOf((await sendMail(second.port, { to: ['b@example.com'] })).response));
    expect(server.messages).toHaveLength(2);
    expect(fake.tokenRequests()).toBe(1);
  });

  it('a 1970 clock is reported as the upstream error, and no token is asked for', async () => {
    const { fake, server, dir, at } = await world(google);
    const config = validateConfig(relayConfig(dir, { upstreams: [{ ...gmail, ...at, refresh_token: 'r' }] })).upstreams[0] as GmailOauth2UpstreamConfig;
    const context = { hostname: 'relaybox.test.example', concurrency: 1, logger: pino({ level: 'silent' }), dataDir: dir };
    const upstream = new OAuthSmtpUpstream(
      { name: 'gmail', type: 'gmail-oauth2', host: '127.0.0.1', port: server.port, security: 'starttls', tls: config.tls, user: USER },
      tokenSourceFor(config, dir, { now: () => 1_000 }),
      context,
    );
    open.push(upstream);
    const err = await upstream.send({ from: USER, to: ['a@example.com'] }, () => Readable.from([Buffer.from('Subject: x\r\n\r\nx\r\n')])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err).toMatchObject({ phase: 'auth', code: null, reply: 'the system clock says 1970-01-01T00:00:01Z: OAuth needs the right time — check NTP (timedatectl)' });
    expect(fake.tokenRequests()).toBe(0);
    expect(server.connections).toBe(0);
  });
});
