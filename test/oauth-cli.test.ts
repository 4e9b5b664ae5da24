import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/load.js';
import type { OAuthUpstreamConfig } from '../src/config/upstreams.js';
import { refreshTokenPath } from '../src/oauth/files.js';
import { tokenSourceFor } from '../src/oauth/sources.js';
import type { FakeOauth } from './helpers/fakeOauth.js';
import { AUTH_URL_LINE, GOOGLE_CLIENT, gmail, m365, runCleanup, setup, start } from './helpers/oauthCli.js';
import { runCli } from './helpers/relay.js';

afterEach(runCleanup);

function expectStored(dir: string, fake: FakeOauth, upstream = 'gmail'): string {
  const path = refreshTokenPath(dir, upstream);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(statSync(join(dir, 'oauth')).mode & 0o777).toBe(0o700);
  const stored = JSON.parse(readFileSync(path, 'utf8')) as { refresh_token: string };
  const exchange = fake.requests.filter((r) => r.grant === 'authorization_code' || r.grant === 'device_code').at(-1);
  expect(exchange?.status).toBe(200);
  // The token stored is one the provider issued: relaybox serve can refresh with it.
  expect(fake.tokenRequests()).toBeGreaterThan(0);
  return stored.refresh_token;
}

describe('relaybox oauth', () => {
  it('google: PKCE authorization through the loopback redirect, the browser played by fetch', async () => {
    const { fake, dir, file } = await setup([{ name: 'outbox', type: 'file', dir: 'x' }, gmail], { clients: { [GOOGLE_CLIENT]: 'desktop-secret' } });
    const cli = start(['oauth', 'google', '--config', file]);
    const url = new URL((await cli.line(AUTH_URL_LINE))[1]!);
    await cli.line(/Waiting up to 10 minutes for the browser, or paste the address here:/);
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      client_id: GOOGLE_CLIENT, response_type: 'code', scope: 'https://mail.google.com/', code_challenge_method: 'S256',
      access_type: 'offline', prompt: 'consent', login_hint: 'scanner@example.com',
    });
    const redirect = url.searchParams.get('redirect_uri')!;
    expect(redirect).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(cli.stdout()).toContain(`ssh -L ${new URL(redirect).port}:127.0.0.1:${new URL(redirect).port} `);
    const page = await fetch(url); // follows the redirect to relaybox's loopback listener
    expect(await page.text()).toContain('relaybox got the authorization');
    expect(await cli.exited).toBe(0);
    const token = expectStored(dir, fake);
    expect(fake.requests[0]!.params).toMatchObject({ grant_type: 'authorization_code', client_secret: 'desktop-secret', redirect_uri: redirect });
    expect(cli.stdout()).toContain(`Refresh token stored in ${refreshTokenPath(dir, 'gmail')}`);
    expect(cli.stdout() + cli.stderr()).not.toContain(token);
    // What relaybox serve then does with it.
    const config = validateConfig(parse(readFileSync(file, 'utf8'))).upstreams[1] as OAuthUpstreamConfig;
    const { accessToken } = await tokenSourceFor(config, dir).source.getToken();
    expect(fake.accepts('scanner@example.com', accessToken)).toBe(true);
  });

  it('google: the final address pasted into the terminal; a wrong paste is explained and the wait goes on', async () => {
    const { fake, dir, file } = await setup([gmail], { clients: { [GOOGLE_CLIENT]: 'desktop-secret' } });
    const cli = start(['oauth', 'google', '--config', file, '--upstream', 'gmail']);
    const url = (await cli.line(AUTH_URL_LINE))[1]!;
    const answer = await fetch(url, { redirect: 'manual' });
    const location = answer.headers.get('location')!;
    cli.child.stdin.write('http://127.0.0.1:1/?code=stale&state=from-another-run\n');
    await new Promise((r) => setTimeout(r, 200));
    expect(cli.stderr()).toContain('the state in that address does not match this run');
    cli.child.stdin.write(`${location}\n`);
    expect(await cli.exited).toBe(0);
    expect(cli.stdout()).toContain('Got the authorization (pasted)');
    expectStored(dir, fake);
  });

  it('microsoft: the browser flow with the delegated scope, the redirect pasted', async () => {
    const { fake, dir, file } = await setup([m365], { clients: { 'public-app': null } });
    const cli = start(['oauth', 'microsoft', '--config', file]);
    const url = new URL((await cli.line(AUTH_URL_LINE))[1]!);
    expect(Object.fromEntries(url.searchParams)).toMatchObject({ scope: 'https://outlook.office.com/SMTP.Send offline_access', response_mode: 'query', code_challenge_method: 'S256' });
    await cli.line(/Waiting up to 10 minutes/);
    expect(cli.stdout()).toContain('Mobile and desktop applications');
    const answer = await fetch(url, { redirect: 'manual' });
    cli.child.stdin.write(`${answer.headers.get('location')}\n`);
    expect(await cli.exited).toBe(0);
    // A public client: no secret travels; Microsoft wants the scope again at the exchange.
    expect(fake.requests[0]!.params).toMatchObject({ grant_type: 'authorization_code', scope: 'https://outlook.office.com/SMTP.Send offline_access' });
    expect(fake.requests[0]!.params.client_secret).toBeUndefined();
    expectStored(dir, fake, 'm365');
  });

  it('microsoft --device: polls until the person signed in, and stores the token', async () => {
    const { fake, dir, file } = await setup([m365], { clients: { 'public-app': null }, deviceUser: 'scanner@contoso.com' });
    const { code, stdout } = await runCli(['oauth', 'microsoft', '--device', '--config', file]);
    expect(code).toBe(0);
    expect(stdout).toContain('enter the code ABCD-EFGH');
    expect(stdout).toContain('Sign in as scanner@contoso.com. The code is valid for 10 minutes.');
    expect(stdout).toContain('Waiting up to 10 minutes for the sign-in');
    expect(fake.requests.map((r) => [r.grant, r.status])).toEqual([['device_code', 400], ['device_code', 200]]);
    expectStored(dir, fake, 'm365');
  });

  it('refuses what cannot work, with exit 2', async () => {
    const { file } = await setup([gmail, { name: 'app', type: 'microsoft365-oauth2', user: 'a@contoso.com', tenant_id: 'contoso.onmicrosoft.com', client_id: 'x', client_secret: 's' }], {});
    const device = await runCli(['oauth', 'google', '--device', '--config', file]);
    expect(device.code).toBe(2);
    expect(device.stderr).toContain('Google does not allow Gmail scopes in the device flow');
    const appOnly = await runCli(['oauth', 'microsoft', '--config', file]);
    expect(appOnly.code).toBe(2);
    expect(appOnly.stderr).toContain('upstream app uses app-only access (client credentials): it needs no refresh token');
    const wrong = await runCli(['oauth', 'google', '--upstream', 'app', '--config', file]);
    expect(wrong.stderr).toContain('upstream app is of type microsoft365-oauth2');
  });
});

describe('relaybox check-config: which grant each OAuth upstream uses', () => {
  it('names the grant and why, and how to get the other one', async () => {
    const { file } = await setup(
      [
        { name: 'm365', type: 'microsoft365-oauth2', user: 'a@contoso.com', tenant_id: 'contoso.onmicrosoft.com', client_id: 'x', client_secret: 's' },
        { name: 'delegated', type: 'microsoft365-oauth2', user: 'b@contoso.com', client_id: 'y' },
        { name: 'confidential', type: 'microsoft365-oauth2', user: 'c@contoso.com', client_id: 'z', client_secret: 's', grant: 'refresh_token' },
        gmail,
      ],
      {},
    );
    const { code, stdout } = await runCli(['check-config', '--config', file]);
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines).toContain('oauth m365: app-only (client credentials) because client_secret is set and grant is not given; set grant: refresh_token to sign in as the user');
    expect(lines).toContain('oauth delegated: delegated (refresh token of b@contoso.com; sign in with: sudo relaybox oauth microsoft --device --upstream delegated) because no client_secret is set and grant is not given');
    expect(lines).toContain('oauth confidential: delegated (refresh token of c@contoso.com; sign in with: sudo relaybox oauth microsoft --device --upstream confidential) because grant: refresh_token is set');
    expect(lines).toContain('oauth gmail: refresh token of scanner@example.com (sign in with: sudo relaybox oauth google --upstream gmail) because client_id and client_secret are set, not service_account_key');
  });
});
