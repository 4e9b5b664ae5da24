import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { formatFinding, summary } from '../src/doctor/report.js';
import { runDoctor } from '../src/doctor/run.js';
import { storeRefreshToken } from '../src/oauth/refreshStore.js';
import { FakeDns } from './helpers/fakeDns.js';
import { FakeOauth } from './helpers/fakeOauth.js';
import { relayConfig } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const closers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c.close()));
});

/** An XOAUTH2 SMTP server, a stand-in token endpoint and DNS: doctor's whole world on loopback. */
async function world(fakeOptions: Parameters<typeof FakeOauth.start>[0]) {
  const fake = await FakeOauth.start(fakeOptions);
  const up = await TestUpstream.start({ tls: true, xoauth2: (user, token) => fake.accepts(user, token) });
  const dns = await FakeDns.start({});
  closers.push(fake, up, dns);
  const dir = tempDir();
  const ca = join(dir, 'upstream-ca.pem');
  writeFileSync(ca, up.cert!);
  const transport = { host: '127.0.0.1', port: up.port, tls: { ca }, token_url: fake.tokenUrl };
  return { fake, up, dns, dir, transport };
}

async function doctor(dir: string, dns: FakeDns, upstreams: Array<Record<string, unknown>>, offline = false) {
  const file = join(dir, 'relaybox.yaml');
  writeFileSync(file, stringify(relayConfig(dir, { upstreams })));
  const { findings } = await runDoctor({ configFile: file, dnsServer: dns.server, timeoutMs: 5000, ntp: async () => 'yes', offline });
  return { findings, lines: findings.map(formatFinding), summary: summary(findings) };
}

describe('relaybox doctor and OAuth tokens', () => {
  it('an upstream nobody signed in for is a FAIL with the command that fixes it, online and --offline', async () => {
    const { dns, dir, transport, fake } = await world({ clients: { 'public-app': null } });
    const m365 = { name: 'm365', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', client_id: 'public-app', ...transport };
    const line = 'FAIL upstream m365: token: no refresh token yet: nobody has signed in as scanner@contoso.com for this upstream. Fix: sudo relaybox oauth microsoft --device --upstream m365';
    for (const offline of [false, true]) {
      const report = await doctor(dir, dns, [m365], offline);
      expect(report.lines).toContain(line);
      expect(report.summary).toMatch(/^1 failed/);
    }
    const api = { name: 'gapi', type: 'gmail-api', user: 'scanner@example.com', client_id: 'desktop', client_secret: 's', token_url: fake.tokenUrl };
    const report = await doctor(dir, dns, [api], true);
    expect(report.lines).toContain('FAIL upstream gapi: token: no refresh token yet: nobody has signed in as scanner@example.com for this upstream. Fix: sudo relaybox oauth google --gmail-api --upstream gapi');
    expect(fake.tokenRequests()).toBe(0);
  });

  it('with a token: refreshes it once, sends nothing, and names invalid_grant with its causes', async () => {
    const { fake, up, dns, dir, transport } = await world({ clients: { desktop: 'desktop-secret' } });
    const gmail = { name: 'gmail', type: 'gmail-oauth2', user: 'scanner@example.com', client_id: 'desktop', client_secret: 'desktop-secret', ...transport };
    await storeRefreshToken(dir, 'gmail', { refreshToken: 'live', clientId: 'desktop', scope: 'https://mail.google.com/', configured: undefined });
    fake.addRefreshToken('live', { user: 'scanner@example.com', clientId: 'desktop' });

    const good = await doctor(dir, dns, [gmail]);
    expect(good.lines).toContain(`OK   upstream gmail: token: refresh token stored in ${join(dir, 'oauth', 'gmail.refresh.json')}: the token endpoint gave a fresh access token (no mail sent)`);
    expect(good.summary).toMatch(/^0 failed/);
    expect(fake.tokenRequests('refresh_token')).toBe(1);

    fake.revokeRefreshToken('live'); // the password was changed
    const revoked = await doctor(dir, dns, [gmail]);
    expect(revoked.lines).toContain(
      'FAIL upstream gmail: token: invalid_grant: the refresh token was revoked or expired. Causes: a password change of scanner@example.com revokes its Gmail tokens; an app whose publishing status is "Testing" ends them after 7 days; scanner@example.com or an admin removed the app\'s access. Fix: sign in again: sudo relaybox oauth google --upstream gmail',
    );
    expect(fake.tokenRequests('refresh_token')).toBe(2);
    expect(up.messages).toHaveLength(0);
  });

  it('app-only: gets one token and words the refusal with the fix', async () => {
    const { dns, dir, transport } = await world({ clients: { app: 'right' } });
    const appOnly = { name: 'app', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', tenant_id: 'contoso.onmicrosoft.com', client_id: 'app', client_secret: 'wrong', ...transport };
    const report = await doctor(dir, dns, [appOnly]);
    expect(report.lines).toContainEqual(expect.stringMatching(/^FAIL upstream app: token: invalid_client: .* — the client secret is wrong or expired \(Entra admin center > App registrations > Certificates & secrets\)/));
  });
});
