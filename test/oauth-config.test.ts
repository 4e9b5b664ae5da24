import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { storeRefreshToken } from '../src/oauth/refreshStore.js';
import { createUpstream } from '../src/upstreams/registry.js';
import type { Upstream } from '../src/upstreams/types.js';
import { getMessage } from '../src/spool/log.js';
import { serviceAccountKeyJson } from './helpers/fakeOauth.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((thing) => thing.close()));
});

function upstreams(entries: Array<Record<string, unknown>>) {
  return validateConfig(relayConfig(tempDir(), { upstreams: entries })).upstreams;
}

function problems(entry: Record<string, unknown>): string[] {
  try {
    upstreams([entry]);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

function made(entry: Record<string, unknown>, dataDir = tempDir()): Upstream {
  const upstream = createUpstream(upstreams([entry])[0]!, { hostname: 'relaybox.test.example', concurrency: 1, logger: pino({ level: 'silent' }), dataDir });
  open.push(upstream);
  return upstream;
}

describe('provider presets on smtp', () => {
  it('fill host, port and STARTTLS', () => {
    const auth = { user: 'apikey', pass: 'SG.key' };
    const [sendgrid, mailgunEu, ses, postmark, brevo, overridden] = upstreams([
      { name: 'a', type: 'smtp', provider: 'sendgrid', auth },
      { name: 'b', type: 'smtp', provider: 'mailgun-eu', auth },
      { name: 'c', type: 'smtp', provider: 'ses', region: 'eu-west-1', auth },
      { name: 'd', type: 'smtp', provider: 'postmark', auth },
      { name: 'e', type: 'smtp', provider: 'brevo', auth },
      { name: 'f', type: 'smtp', provider: 'mailgun', host: 'smtp.proxy.example', port: 2525, auth },
    ]);
    expect(sendgrid).toMatchObject({ host: 'smtp.sendgrid.net', port: 587, security: 'starttls' });
    expect(mailgunEu).toMatchObject({ host: 'smtp.eu.mailgun.org', port: 587, security: 'starttls' });
    expect(ses).toMatchObject({ host: 'email-smtp.eu-west-1.amazonaws.com', port: 587, security: 'starttls' });
    expect(ses).not.toHaveProperty('region');
    expect(postmark).toMatchObject({ host: 'smtp.postmarkapp.com', port: 587 });
    expect(brevo).toMatchObject({ host: 'smtp-relay.brevo.com', port: 587 });
    expect(overridden).toMatchObject({ host: 'smtp.proxy.example', port: 2525 });
    expect(made({ name: 'a', type: 'smtp', provider: 'sendgrid', auth }).describe()).toBe('smtp.sendgrid.net:587 starttls, auth as apikey, verify certificates');
  });

  it('say what is missing or wrong', () => {
    expect(problems({ name: 'x', type: 'smtp' })).toEqual(['upstreams[0].host: is required']);
    const auth = { user: 'u', pass: 'p' };
    expect(problems({ name: 'x', type: 'smtp', provider: 'ses', auth })).toEqual([
      'upstreams[0].region: Amazon SES needs the region its SMTP credentials belong to, e.g. region: eu-west-1 (or a host)',
    ]);
    expect(problems({ name: 'x', type: 'smtp', provider: 'sendgrid' })).toEqual(['upstreams[0].auth: sendgrid needs auth: user "apikey", pass = an API key']);
    expect(problems({ name: 'x', type: 'smtp', provider: 'sendgrid', security: 'none', auth })).toEqual(['upstreams[0].security: sendgrid requires TLS: use starttls (or tls)']);
    expect(problems({ name: 'x', type: 'smtp', provider: 'mailchimp' })[0]).toMatch(/^upstreams\[0\]\.provider: expected one of sendgrid, mailgun, mailgun-eu, ses, postmark, brevo/);
  });
});

describe('gmail-app-password', () => {
  it('strips the spaces Google shows and logs in over STARTTLS', async () => {
    const server = await TestUpstream.start({ tls: true, requireTls: true, auth: { user: 'me@gmail.com', pass: 'abcdefghijklmnop' } });
    open.push(server);
    const dir = tempDir();
    const entry = { name: 'gmail-app', type: 'gmail-app-password', user: 'me@gmail.com', password: 'abcd efgh ijkl mnop', host: '127.0.0.1', port: server.port, tls: { verify: false } };
    expect(upstreams([entry])[0]).toMatchObject({ password: 'abcdefghijklmnop' });
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [entry] }));
    const id = Number(/queued as (\d+)/.exec((await sendMail(port, { to: ['a@example.com'] })).response)![1]);
    await waitFor(() => getMessage(app.spool.db, id)?.state === 'delivered');
    expect(server.messages[0]).toMatchObject({ authUser: 'me@gmail.com', secure: true });
  });

  it('refuses anything but 16 letters, without echoing the secret', () => {
    const [problem] = problems({ name: 'g', type: 'gmail-app-password', user: 'me@gmail.com', password: 'hunter2 secret' });
    expect(problem).toBe('upstreams[0].password: expected the 16-letter app password Google shows (spaces are fine), got 13 characters with non-letters');
    expect(problem).not.toContain('hunter2');
  });

  it('defaults to smtp.gmail.com:587', () => {
    expect(made({ name: 'g', type: 'gmail-app-password', user: 'me@gmail.com', password: 'abcdefghijklmnop' }).describe()).toBe(
      'smtp.gmail.com:587 starttls, auth as me@gmail.com, verify certificates',
    );
  });
});

describe('OAuth upstream configuration', () => {
  it('gmail-oauth2 needs an OAuth client or a service account, not both', () => {
    expect(problems({ name: 'g', type: 'gmail-oauth2', user: 'a@example.com' })).toEqual([
      'upstreams[0].client_id: is required (the Desktop-type OAuth client), or service_account_key for a Workspace service account',
      "upstreams[0].client_secret: is required: Google's token endpoint wants the Desktop client's secret too",
    ]);
    const dir = tempDir();
    const key = join(dir, 'sa.json');
    writeFileSync(key, serviceAccountKeyJson('sa@p.iam.gserviceaccount.com', 'https://oauth2.googleapis.com/token'));
    expect(problems({ name: 'g', type: 'gmail-oauth2', user: 'a@example.com', service_account_key: { file: key }, client_id: 'c' })).toEqual([
      'upstreams[0].client_id: not used with service_account_key: choose the service account or an OAuth client',
    ]);
    writeFileSync(key, '{"client_email": "x"}');
    expect(problems({ name: 'g', type: 'gmail-oauth2', user: 'a@example.com', service_account_key: { file: key } })).toEqual([
      'upstreams[0].service_account_key: the service account key has no client_email or private_key',
    ]);
  });

  it('token endpoints must be https unless on loopback', () => {
    const base = { name: 'g', type: 'gmail-oauth2', user: 'a@example.com', client_id: 'c', client_secret: 's' };
    expect(problems({ ...base, token_url: 'http://proxy.example/token' })).toEqual([
      'upstreams[0].token_url: expected an https:// URL (plain http only on 127.0.0.1 or localhost)',
    ]);
    expect(upstreams([{ ...base, token_url: 'http://127.0.0.1:9/token', auth_url: 'https://accounts.example/auth' }])[0]).toMatchObject({ token_url: 'http://127.0.0.1:9/token' });
  });

  it('microsoft365-oauth2: a secret without a refresh token means app-only, which needs the tenant', () => {
    const base = { name: 'm', type: 'microsoft365-oauth2', user: 'a@contoso.com', client_id: 'app' };
    expect(upstreams([{ ...base, tenant_id: 'contoso.onmicrosoft.com', client_secret: 's' }])[0]).toMatchObject({ grant: 'client_credentials' });
    expect(upstreams([{ ...base }])[0]).toMatchObject({ grant: 'refresh_token' });
    expect(upstreams([{ ...base, client_secret: 's', refresh_token: 'r' }])[0]).toMatchObject({ grant: 'refresh_token' });
    expect(problems({ ...base, client_secret: 's' })).toEqual(['upstreams[0].tenant_id: app-only access needs your directory (tenant) ID, not common/organizations']);
  });

  it('check-config lines say how each authenticates, never with a secret', async () => {
    const dir = tempDir();
    const gmail = made({ name: 'gmail', type: 'gmail-oauth2', user: 'a@example.com', client_id: 'c', client_secret: 'topsecret' }, dir);
    expect(gmail.describe()).toBe('smtp.gmail.com:587 starttls, XOAUTH2 as a@example.com, verify certificates; NO refresh token yet — run: relaybox oauth google --upstream gmail');
    await storeRefreshToken(dir, 'gmail', { refreshToken: 'r', clientId: 'c', scope: 's', configured: undefined });
    expect(gmail.describe()).toMatch(/; refresh token stored in .*\/oauth\/gmail\.refresh\.json$/);
    const m365 = made({ name: 'm365', type: 'microsoft365-oauth2', user: 'a@contoso.com', tenant_id: 'contoso.onmicrosoft.com', client_id: 'app', client_secret: 'topsecret' }, dir);
    expect(m365.describe()).toBe('smtp.office365.com:587 starttls, XOAUTH2 as a@contoso.com, verify certificates; app-only (client credentials) for a@contoso.com');
  });
});
