import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/load.js';
import type { OAuthUpstreamConfig } from '../src/config/upstreams.js';
import { pollDeviceToken, startDeviceAuthorization } from '../src/oauth/deviceFlow.js';
import { TokenError } from '../src/oauth/errors.js';
import { refreshTokenPath, tokenCachePath } from '../src/oauth/files.js';
import { readStoredRefreshToken, storeRefreshToken } from '../src/oauth/refreshStore.js';
import { tokenSourceFor } from '../src/oauth/sources.js';
import { FakeOauth, serviceAccountKeyJson, serviceAccountKeyPair, type FakeOauthOptions } from './helpers/fakeOauth.js';
import { relayConfig } from './helpers/relay.js';
import { tempDir } from './helpers/tmp.js';

const fakes: FakeOauth[] = [];
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

async function fake(options: FakeOauthOptions): Promise<FakeOauth> {
  const f = await FakeOauth.start(options);
  fakes.push(f);
  return f;
}

/** One upstream entry through the real config validation, as relaybox would see it. */
function upstream(dir: string, entry: Record<string, unknown>): OAuthUpstreamConfig {
  return validateConfig(relayConfig(dir, { upstreams: [entry] })).upstreams[0] as OAuthUpstreamConfig;
}

async function failure(promise: Promise<unknown>): Promise<TokenError> {
  const err = await promise.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(TokenError);
  return err as TokenError;
}

const mode = (path: string) => statSync(path).mode & 0o777;

describe('OAuth token sources', () => {
  it('refresh token grant: one request, cached in memory and on disk (0600 in a 0700 dir), none after a restart', async () => {
    const dir = tempDir();
    const google = await fake({ clients: { 'desktop.apps.googleusercontent.com': 'desktop-secret' } });
    google.addRefreshToken('1//refresh-A', { user: 'scanner@example.com', clientId: 'desktop.apps.googleusercontent.com' });
    const config = upstream(dir, {
      name: 'gmail', type: 'gmail-oauth2', user: 'scanner@example.com', token_url: google.tokenUrl,
      client_id: 'desktop.apps.googleusercontent.com', client_secret: 'desktop-secret', refresh_token: '1//refresh-A',
    });
    const first = tokenSourceFor(config, dir).source;
    const tokens = await Promise.all([first.getToken(), first.getToken(), first.getToken()]);
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
    expect(google.accepts('scanner@example.com', tokens[0]!.accessToken)).toBe(true);
    expect(google.tokenRequests('refresh_token')).toBe(1);
    expect(google.requests[0]!.params).toMatchObject({ client_id: 'desktop.apps.googleusercontent.com', client_secret: 'desktop-secret', refresh_token: '1//refresh-A' });
    expect(google.requests[0]!.params.scope).toBeUndefined();

    const cache = tokenCachePath(dir, 'gmail');
    expect(mode(cache)).toBe(0o600);
    expect(mode(join(dir, 'oauth'))).toBe(0o700);
    expect(readFileSync(cache, 'utf8')).not.toMatch(/refresh-A|desktop-secret/);

    const restarted = tokenSourceFor(config, dir).source;
    expect((await restarted.getToken()).accessToken).toBe(tokens[0]!.accessToken);
    expect(google.tokenRequests()).toBe(1);

    restarted.invalidate();
    const fresh = await restarted.getToken();
    expect(fresh.accessToken).not.toBe(tokens[0]!.accessToken);
    expect(google.tokenRequests()).toBe(2);
  });

  it('refreshes when less than a minute of the token is left', async () => {
    const dir = tempDir();
    const google = await fake({ clients: { c: 's' }, expiresIn: 3600 });
    google.addRefreshToken('r', { user: 'a@example.com', clientId: 'c' });
    let now = Date.now();
    const config = upstream(dir, { name: 'gmail', type: 'gmail-oauth2', user: 'a@example.com', token_url: google.tokenUrl, client_id: 'c', client_secret: 's', refresh_token: 'r' });
    const { source } = tokenSourceFor(config, dir, { now: () => now });
    const first = await source.getToken();
    now += 3600_000 - 61_000;
    expect((await source.getToken()).accessToken).toBe(first.accessToken);
    now += 2_000;
    expect((await source.getToken()).accessToken).not.toBe(first.accessToken);
    expect(google.tokenRequests()).toBe(2);
  });

  it('service account: an RS256 JWT with iss, sub, scope, aud and a lifetime of at most an hour', async () => {
    const dir = tempDir();
    const google = await fake({ serviceAccount: { clientEmail: 'relay@proj.iam.gserviceaccount.com', publicKey: serviceAccountKeyPair().publicKey } });
    const keyFile = join(dir, 'sa.json');
    writeFileSync(keyFile, serviceAccountKeyJson('relay@proj.iam.gserviceaccount.com', google.tokenUrl), { mode: 0o600 });
    const config = upstream(dir, { name: 'workspace', type: 'gmail-oauth2', user: 'scanner@example.com', service_account_key: { file: keyFile } });
    const { accessToken } = await tokenSourceFor(config, dir).source.getToken();
    expect(google.accepts('scanner@example.com', accessToken)).toBe(true);
    expect(google.requests[0]).toMatchObject({ grant: 'jwt-bearer', status: 200 });
    const claims = JSON.parse(Buffer.from(google.requests[0]!.params.assertion!.split('.')[1]!, 'base64url').toString());
    expect(claims).toMatchObject({ iss: 'relay@proj.iam.gserviceaccount.com', sub: 'scanner@example.com', scope: 'https://mail.google.com/', aud: google.tokenUrl });
    expect(claims.exp - claims.iat).toBeLessThanOrEqual(3600);
  });

  it('client credentials for Microsoft 365 app-only access', async () => {
    const dir = tempDir();
    const ms = await fake({ clients: { 'app-id': 'app-secret' } });
    const config = upstream(dir, {
      name: 'm365', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', tenant_id: 'contoso.onmicrosoft.com',
      client_id: 'app-id', client_secret: 'app-secret', token_url: ms.tokenUrl,
    });
    const { accessToken } = await tokenSourceFor(config, dir).source.getToken();
    expect(ms.accepts('scanner@contoso.com', accessToken)).toBe(true);
    expect(ms.requests[0]!.params).toMatchObject({ grant_type: 'client_credentials', scope: 'https://outlook.office365.com/.default' });
  });

  it('keeps the refresh token Microsoft rotates, and uses it next time', async () => {
    const dir = tempDir();
    const ms = await fake({ clients: { 'public-app': null }, rotateRefreshTokens: true });
    ms.addRefreshToken('M.first', { user: 'scanner@contoso.com', clientId: 'public-app' });
    const config = upstream(dir, { name: 'm365', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', client_id: 'public-app', refresh_token: 'M.first', token_url: ms.tokenUrl });
    expect(config).toMatchObject({ grant: 'refresh_token' });
    const { source } = tokenSourceFor(config, dir);
    await source.getToken();
    expect(ms.requests[0]!.params.scope).toBe('https://outlook.office.com/SMTP.Send offline_access');
    const stored = await readStoredRefreshToken(dir, 'm365');
    expect(stored?.refresh_token).toMatch(/^1\/\/fake-refresh-/);
    expect(mode(refreshTokenPath(dir, 'm365'))).toBe(0o600);
    source.invalidate();
    await source.getToken(); // 'M.first' is gone at the fake: only the rotated token works
    expect(ms.requests.map((r) => r.status)).toEqual([200, 200]);
    expect(ms.requests[1]!.params.refresh_token).toBe(stored!.refresh_token);
  });

  it('a stored refresh token (relaybox oauth) wins over none in the config; its absence says what to run', async () => {
    const dir = tempDir();
    const google = await fake({ clients: { c: 's' } });
    const config = upstream(dir, { name: 'gmail', type: 'gmail-oauth2', user: 'a@example.com', token_url: google.tokenUrl, client_id: 'c', client_secret: 's' });
    const missing = await failure(tokenSourceFor(config, dir).source.getToken());
    expect(missing.message).toBe('no refresh token for upstream gmail — run: relaybox oauth google --upstream gmail');
    expect(google.tokenRequests()).toBe(0);
    google.addRefreshToken('stored', { user: 'a@example.com', clientId: 'c' });
    await storeRefreshToken(dir, 'gmail', { refreshToken: 'stored', clientId: 'c', scope: 'https://mail.google.com/', configured: undefined });
    await tokenSourceFor(config, dir).source.getToken();
    expect(google.requests[0]!.params.refresh_token).toBe('stored');
  });

  it('says invalid_grant, why, and the command that fixes it', async () => {
    const dir = tempDir();
    const google = await fake({ clients: { c: 's' } });
    const config = upstream(dir, { name: 'gmail', type: 'gmail-oauth2', user: 'a@example.com', token_url: google.tokenUrl, client_id: 'c', client_secret: 's', refresh_token: 'revoked' });
    const err = await failure(tokenSourceFor(config, dir).source.getToken());
    expect(err.failure).toBe('refused');
    expect(err.message).toBe(
      'invalid_grant: the refresh token was revoked or expired (a password change revokes Gmail tokens; an app in "Testing" status ends them after 7 days) — run: relaybox oauth google --upstream gmail',
    );
  });

  it('refuses to ask for tokens while the clock says 1970', async () => {
    const dir = tempDir();
    const google = await fake({ clients: { c: 's' } });
    const config = upstream(dir, { name: 'gmail', type: 'gmail-oauth2', user: 'a@example.com', token_url: google.tokenUrl, client_id: 'c', client_secret: 's', refresh_token: 'r' });
    const err = await failure(tokenSourceFor(config, dir, { now: () => 5_000 }).source.getToken());
    expect(err.failure).toBe('clock');
    expect(err.message).toBe('the system clock says 1970-01-01T00:00:05Z: OAuth needs the right time — check NTP (timedatectl)');
    expect(google.tokenRequests()).toBe(0);
  });

  it('a token endpoint that is down is "unavailable", not a refusal', async () => {
    const dir = tempDir();
    const google = await fake({});
    const url = google.tokenUrl;
    await google.close();
    const config = upstream(dir, { name: 'gmail', type: 'gmail-oauth2', user: 'a@example.com', token_url: url, client_id: 'c', client_secret: 's', refresh_token: 'r' });
    const err = await failure(tokenSourceFor(config, dir).source.getToken());
    expect(err.failure).toBe('unavailable');
    expect(err.message).toMatch(/^token endpoint http:\/\/127\.0\.0\.1:\d+\/token unreachable: ECONNREFUSED$/);
  });

  it('device flow: waits while pending, slows down when told (RFC 8628)', async () => {
    const ms = await fake({ clients: { 'public-app': null }, deviceWaits: ['authorization_pending', 'slow_down'], deviceUser: 'a@contoso.com' });
    const device = await startDeviceAuthorization({ deviceUrl: `${ms.url}/devicecode`, clientId: 'public-app', scope: 'https://outlook.office.com/SMTP.Send offline_access' });
    expect(device).toMatchObject({ userCode: 'ABCD-EFGH', interval: 1 });
    const sleeps: number[] = [];
    const answer = await pollDeviceToken({ tokenUrl: ms.tokenUrl, clientId: 'public-app', device, sleep: async (ms) => void sleeps.push(ms) });
    expect(sleeps).toEqual([1000, 1000, 6000]);
    expect(answer.refresh_token).toBeTruthy();
    expect(ms.accepts('a@contoso.com', answer.access_token)).toBe(true);
  });
});
