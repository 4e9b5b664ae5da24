import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { getMessage } from '../src/spool/log.js';
import { GMAIL_CHUNK_BYTES } from '../src/upstreams/gmailApi.js';
import { FakeOauth, serviceAccountKeyJson, serviceAccountKeyPair } from './helpers/fakeOauth.js';
import { GmailApiDouble, googleError } from './helpers/gmailApiDouble.js';
import { stringify } from 'yaml';
import { CLI, relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((thing) => thing.close()));
});

const USER = 'scanner@example.com';
const SA = 'relay@project.iam.gserviceaccount.com';
const CLIENT = { id: 'desktop.apps.googleusercontent.com', secret: 'desktop-secret' };
const SEND_SCOPE = 'https://www.googleapis.com/auth/gmail.send';

/** A fake Google: the token endpoint and the Gmail API upload endpoint, and the upstream config for them. */
async function world(credentials: 'service-account' | 'refresh-token' = 'service-account') {
  const dir = tempDir();
  const fake = await FakeOauth.start({ serviceAccount: { clientEmail: SA, publicKey: serviceAccountKeyPair().publicKey }, clients: { [CLIENT.id]: CLIENT.secret } });
  const gmail = await GmailApiDouble.start({ fake, user: USER, dir });
  open.push(fake, gmail);
  let auth: Record<string, unknown>;
  if (credentials === 'service-account') {
    const key = join(dir, 'sa.json');
    writeFileSync(key, serviceAccountKeyJson(SA, 'https://oauth2.googleapis.com/token'));
    auth = { service_account_key: { file: key } };
  } else {
    fake.addRefreshToken('1//gmail-send', { user: USER, clientId: CLIENT.id, scope: SEND_SCOPE });
    auth = { client_id: CLIENT.id, client_secret: CLIENT.secret, refresh_token: '1//gmail-send' };
  }
  const upstream = { name: 'gmail-api', type: 'gmail-api', user: USER, ...auth, api_url: gmail.url, token_url: fake.tokenUrl, tls: { ca: gmail.caFile } };
  return { dir, fake, gmail, upstream };
}

async function smtpUpstream() {
  const up = await TestUpstream.start();
  open.push(up);
  return { up, config: { name: 'smtp', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' } };
}

const idOf = (response: string) => Number(/queued as (\d+)/.exec(response)![1]);

type App = Awaited<ReturnType<typeof startRelay>>['app'];
const settled = (app: App, id: number, state: 'delivered' | 'failed' | 'deferred') =>
  waitFor(() => {
    const m = getMessage(app.spool.db, id);
    return m?.state === state && m;
  }, 30_000, `message ${id} ${state}`);

/** The delivery attempts of a message, without its acceptance. */
const attempts = (m: { history: Array<{ event: string; upstream: string | null; reply: string | null }> }) => m.history.filter((h) => h.event !== 'accepted');

const scan = (to: string, extra = '') =>
  `From: ${USER}\r\nTo: ${to}\r\nSubject: Scan\r\nDate: Fri, 05 Jan 2024 09:30:00 +0000\r\nMessage-ID: <scan-1@example.com>\r\n${extra}\r\nPDF attached\r\n`;

describe('gmail-api upstream', () => {
  it('sends as message/rfc822 with a service account for gmail.send; envelope-only recipients go as Bcc', async () => {
    const { fake, gmail, dir, upstream } = await world();
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    // A FRITZ!Box names nobody in To: — and a second recipient is only in the envelope.
    const raw = `From: ${USER}\r\nTo: office@example.com\r\nSubject: Scan\r\n\r\nPDF attached\r\n`;
    const id = idOf((await sendMail(port, { from: USER, to: ['office@example.com', 'boss@example.com'], raw })).response);
    const done = await settled(app, id, 'delivered');
    expect(done.history.at(-1)).toMatchObject({ event: 'delivered', upstream: 'gmail-api' });
    expect(done.history.at(-1)!.reply).toMatch(/^200 OK Gmail API id \w+/);
    expect(gmail.uploadTypes).toEqual(['media']);
    const sent = gmail.sent[0]!.toString();
    expect(sent).toMatch(/^Bcc: boss@example\.com\r\n/);
    expect(sent).toContain('To: office@example.com\r\n');
    expect(sent).toContain('\r\n\r\nPDF attached\r\n');
    const assertion = fake.requests[0]!.params.assertion!.split('.')[1]!;
    expect(JSON.parse(Buffer.from(assertion, 'base64url').toString())).toMatchObject({ scope: SEND_SCOPE, sub: USER, iss: SA });
    expect(app.status.upstream('gmail-api')?.state).toBe('ok');
  });

  it('keeps DKIM signing for Gmail API mail', async () => {
    const { gmail, dir, upstream } = await world();
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const dkim = { domain: 'example.com', selector: 'relaybox', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream], dkim }));
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@example.com'], raw: scan('a@example.com') })).response), 'delivered');
    expect(gmail.sent[0]!.toString()).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.com;/m);
  });

  it('sends with the refresh token of `relaybox oauth google --gmail-api`, and refreshes it once when the API says 401', async () => {
    const { fake, gmail, dir, upstream } = await world('refresh-token');
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@example.com'], raw: scan('a@example.com') })).response), 'delivered');
    fake.expireAccessTokens();
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@example.com'], raw: scan('a@example.com') })).response), 'delivered');
    expect(gmail.sent).toHaveLength(2);
    expect(fake.tokenRequests('refresh_token')).toBe(2);
    expect(gmail.seen.map((s) => s.status)).toEqual([200, 401, 200]);
    // The connection was kept and reused.
    expect(gmail.connections).toBe(1);
  });

  it('a revoked refresh token is auth_failed with the fix, and the mail waits', async () => {
    const { fake, gmail, dir, upstream } = await world('refresh-token');
    fake.revokeRefreshToken('1//gmail-send');
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    const id = idOf((await sendMail(port, { from: USER, to: ['a@example.com'], raw: scan('a@example.com') })).response);
    const m = await settled(app, id, 'deferred');
    expect(m.history.at(-1)!.reply).toMatch(/invalid_grant: the refresh token was revoked or expired .* run: relaybox oauth google --upstream gmail-api/);
    expect(app.status.upstream('gmail-api')?.state).toBe('auth_failed');
    expect(gmail.seen).toEqual([]);
  });

  it.each([
    ['429', { ...googleError(429, 'rateLimitExceeded', 'Too many requests', 'RESOURCE_EXHAUSTED'), headers: { 'retry-after': '120' } }],
    ['403 userRateLimitExceeded', googleError(403, 'userRateLimitExceeded', 'User-rate limit exceeded', 'PERMISSION_DENIED')],
  ])('%s holds the upstream, and the mail fails over to SMTP in the same round', async (_name, answer) => {
    const { gmail, dir, upstream } = await world();
    const { up, config } = await smtpUpstream();
    gmail.answerNext(/^POST /, answer);
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream, config] }));
    const first = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@example.com'], raw: scan('a@example.com') })).response), 'delivered');
    expect(attempts(first).map((h) => [h.event, h.upstream])).toEqual([
      ['deferred', 'gmail-api'],
      ['delivered', 'smtp'],
    ]);
    expect(attempts(first)[0]!.reply).toMatch(/^HTTP \d{3} [A-Z_]+\/(rateLimitExceeded|userRateLimitExceeded): .* \(holding for (120|60)s\)$/);
    expect(app.status.upstream('gmail-api')?.state).toBe('quota');
    // Held: the next message goes straight to SMTP.
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['b@example.com'], raw: scan('b@example.com') })).response), 'delivered');
    expect(gmail.seen).toHaveLength(1);
    expect(up.messages).toHaveLength(2);
  });

  it('SMTP down: the mail fails over to the Gmail API in the same round', async () => {
    const { gmail, dir, upstream } = await world();
    const { up, config } = await smtpUpstream();
    up.failConnect(421, '4.3.2 Service not available');
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [config, upstream] }));
    const m = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@example.com'], raw: scan('a@example.com') })).response), 'delivered');
    expect(attempts(m).map((h) => [h.event, h.upstream])).toEqual([
      ['deferred', 'smtp'],
      ['delivered', 'gmail-api'],
    ]);
    expect(gmail.sent).toHaveLength(1);
  });

  it("400 fails the message with Google's words", async () => {
    const { gmail, dir, upstream } = await world();
    gmail.answerNext(/^POST /, googleError(400, 'invalidArgument', 'Invalid To header', 'INVALID_ARGUMENT'));
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    const m = await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@example.com'], raw: scan('a@example.com') })).response), 'failed');
    expect(m.history.at(-1)!.reply).toBe('HTTP 400 INVALID_ARGUMENT/invalidArgument: Invalid To header');
  });

  it('a 30 MB scan goes as a resumable upload in 256 KiB multiples and arrives intact', async () => {
    const { gmail, dir, upstream } = await world();
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [upstream] }));
    const base64 = randomBytes(22 * 1024 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n');
    const raw = Buffer.from(scan('a@example.com', `MIME-Version: 1.0\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n`).replace('PDF attached', base64));
    expect(raw.length).toBeGreaterThan(30_000_000);
    const id = idOf((await sendMail(port, { from: USER, to: ['a@example.com'], raw })).response);
    await settled(app, id, 'delivered');
    expect(gmail.uploadTypes).toEqual(['resumable']);
    expect(createHash('sha256').update(gmail.sent[0]!).digest('hex')).toBe(createHash('sha256').update(raw).digest('hex'));
    const pieces = gmail.seen.filter((s) => s.method === 'PUT');
    expect(pieces.length).toBe(Math.ceil(raw.length / GMAIL_CHUNK_BYTES));
  }, 120_000);
});

describe('relaybox oauth google --gmail-api', () => {
  it('asks for gmail.send for the gmail-api upstream, and serve sends with the token it stored', async () => {
    const { fake, gmail, dir, upstream } = await world('refresh-token');
    // No refresh token configured: the sign-in below gets one.
    const signIn = { ...upstream, auth_url: fake.authUrl, refresh_token: undefined };
    const gmailOauth2 = { name: 'gmail-smtp', type: 'gmail-oauth2', user: USER, client_id: CLIENT.id, client_secret: CLIENT.secret, token_url: fake.tokenUrl, auth_url: fake.authUrl };
    const config = relayConfig(dir, { upstreams: [gmailOauth2, signIn] });
    const file = join(dir, 'relaybox.yaml');
    writeFileSync(file, stringify(config));
    const child = spawn(process.execPath, [CLI, 'oauth', 'google', '--gmail-api', '--config', file], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const authorizeUrl = await new Promise<URL>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        stdout += d;
        const m = /^ {3}(http:\/\/127\.0\.0\.1:\d+\/authorize\?\S+)$/m.exec(stdout);
        if (m && /Waiting up to .* for the browser/.test(stdout)) resolve(new URL(m[1]!));
      });
      void exited.then(() => reject(new Error(`exited early:\n${stdout}`)));
    });
    expect(authorizeUrl.searchParams.get('scope')).toBe(SEND_SCOPE);
    expect(stdout).toContain('upstream "gmail-api"');
    await (await fetch(authorizeUrl)).text(); // the browser: consent, then the redirect to the loopback listener
    expect(await exited).toBe(0);
    const { app, port } = await startRelay(relayConfig(dir, { upstreams: [signIn] }));
    await settled(app, idOf((await sendMail(port, { from: USER, to: ['a@example.com'], raw: scan('a@example.com') })).response), 'delivered');
    expect(gmail.sent).toHaveLength(1);
  });
});
