import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/load.js';
import type { OAuthUpstreamConfig } from '../src/config/upstreams.js';
import { refreshTokenPath } from '../src/oauth/files.js';
import { tokenSourceFor } from '../src/oauth/sources.js';
import { FakeOauth } from './helpers/fakeOauth.js';
import { CLI, relayConfig, runCli } from './helpers/relay.js';
import { tempDir } from './helpers/tmp.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const done of cleanup.splice(0)) await done();
});

const GOOGLE_CLIENT = 'desktop.apps.googleusercontent.com';

async function setup(upstreams: Array<Record<string, unknown>>, fakeOptions: Parameters<typeof FakeOauth.start>[0]) {
  const fake = await FakeOauth.start(fakeOptions);
  cleanup.push(() => fake.close());
  const dir = tempDir();
  const file = join(dir, 'relaybox.yaml');
  const withEndpoints = upstreams.map((u) => (String(u.type).endsWith('oauth2') ? { ...u, token_url: fake.tokenUrl, auth_url: fake.authUrl } : u));
  writeFileSync(file, stringify(relayConfig(dir, { upstreams: withEndpoints })));
  return { fake, dir, file };
}

interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** Resolves with the first printed line that matches. */
  line(pattern: RegExp): Promise<RegExpExecArray>;
}

/** The CLI as a person runs it in a terminal: we read what it prints and may type into it. */
function start(args: string[]): Running {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  cleanup.push(() => void (child.exitCode === null && child.kill('SIGKILL')));
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  child.stdout.on('data', (d) => {
    stdout += d;
    for (const w of waiters) w();
  });
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const line = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = pattern.exec(stdout);
        if (m) resolve(m);
      };
      waiters.push(check);
      check();
      void exited.then(() => reject(new Error(`exited before printing ${pattern}:\n${stdout}\n${stderr}`)));
    });
  return { child, stdout: () => stdout, stderr: () => stderr, exited, line };
}

const gmail = { name: 'gmail', type: 'gmail-oauth2', user: 'scanner@example.com', client_id: GOOGLE_CLIENT, client_secret: 'desktop-secret' };
const AUTH_URL_LINE = /^ {3}(http:\/\/127\.0\.0\.1:\d+\/authorize\?\S+)$/m;

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
    await cli.line(/Waiting for the browser/);
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

  it('microsoft --device: polls until the person signed in, and stores the token', async () => {
    const m365 = { name: 'm365', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', client_id: 'public-app' };
    const { fake, dir, file } = await setup([m365], { clients: { 'public-app': null }, deviceUser: 'scanner@contoso.com' });
    const { code, stdout } = await runCli(['oauth', 'microsoft', '--device', '--config', file]);
    expect(code).toBe(0);
    expect(stdout).toContain('enter the code ABCD-EFGH');
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
