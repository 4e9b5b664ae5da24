import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { getMessage } from '../src/spool/log.js';
import { useBrowser } from './helpers/browser.js';
import { FakeOauth, type FakeOauthOptions } from './helpers/fakeOauth.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const TOKEN = 'reconnect-browser-token';
const SCREENSHOTS = '/tmp/relaybox-console';
const getBrowser = useBrowser();
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((thing) => thing.close()));
});

/** relaybox whose only upstream refuses its sign-in, with one message deferred for it (retries an hour apart). */
async function refusedUpstream(fakeOptions: FakeOauthOptions, upstream: Record<string, unknown>, style: 'google' | 'microsoft') {
  const fake = await FakeOauth.start(fakeOptions);
  const server = await TestUpstream.start({ tls: true, requireTls: true, xoauth2: (user, token) => fake.accepts(user, token), xoauth2Style: style });
  open.push(fake, server);
  const dir = tempDir();
  const ca = join(dir, 'upstream-ca.pem');
  writeFileSync(ca, server.cert!);
  const { app, port } = await startRelay(
    relayConfig(dir, {
      http: { listen: '127.0.0.1:0', admin_token: TOKEN },
      upstreams: [{ ...upstream, host: '127.0.0.1', port: server.port, tls: { ca }, token_url: fake.tokenUrl, auth_url: fake.authUrl }],
      delivery: { retry: { first: '1h', max: '1h', give_up_after: '2d' }, shutdown_grace: '2s' },
    }),
  );
  const id = Number(/queued as (\d+)/.exec((await sendMail(port, { to: ['office@example.com'] })).response)![1]);
  const name = String(upstream.name);
  await waitFor(() => getMessage(app.spool.db, id)?.state === 'deferred' && app.status.upstream(name)?.state === 'auth_failed', 30_000, 'auth_failed');
  return { app, dir, id, url: `http://127.0.0.1:${app.httpAddress!.port}/` };
}

async function logIn(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.locator('#token').fill(TOKEN);
  await page.locator('#login-form button').click();
  await page.locator('#console').waitFor({ state: 'visible' });
}

function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/status of (401|400)/.test(msg.text())) errors.push(`console: ${msg.text()}`);
  });
  return errors;
}

describe('Reconnect in the console (headless Chromium)', () => {
  it('Microsoft: Reconnect shows the device code and its link, then "Connected", and the deferred mail goes out', async () => {
    const m365 = { name: 'm365', type: 'microsoft365-oauth2', user: 'scanner@contoso.com', client_id: 'public-app', refresh_token: 'M.revoked' };
    const { app, dir, id, url } = await refusedUpstream({ clients: { 'public-app': null }, deviceUser: 'scanner@contoso.com', deviceWaits: ['authorization_pending', 'authorization_pending'] }, m365, 'microsoft');
    const context = await getBrowser().newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    const page = await context.newPage();
    const errors = watchErrors(page);
    await logIn(page, url);

    const card = page.locator('#upstreams li[data-state="auth_failed"]');
    await card.waitFor();
    const button = card.locator('button.reconnect-button');
    await button.waitFor();
    expect(await button.textContent()).toBe('Reconnect');
    await button.click();

    await expect.poll(() => page.locator('#rc-code').textContent(), { timeout: 30_000 }).toBe('ABCD-EFGH');
    const link = page.locator('#rc-device-link a');
    expect(await link.getAttribute('href')).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/device$/);
    expect(await link.getAttribute('target')).toBe('_blank');
    expect(await page.locator('#rc-expires').textContent()).toMatch(/^The code expires in 10 minutes/);
    expect(await page.locator('#rc-device-intro').textContent()).toContain('scanner@contoso.com');
    await page.screenshot({ path: `${SCREENSHOTS}-reconnect-device.png` });

    // The person signs in on another device; the fake provider approves after two polls.
    await expect.poll(() => page.locator('#rc-status').textContent(), { timeout: 30_000 }).toMatch(/^Connected\./);
    expect(await page.locator('#rc-device').isHidden()).toBe(true);
    expect(statSync(join(dir, 'oauth', 'm365.refresh.json')).mode & 0o777).toBe(0o600);
    await waitFor(() => getMessage(app.spool.db, id)?.state === 'delivered', 30_000, 'the deferred message delivered');
    await expect.poll(() => page.locator('#upstreams li').getAttribute('data-state'), { timeout: 30_000 }).toBe('ok');
    expect(await page.locator('#upstreams button.reconnect-button').count()).toBe(0);
    await page.screenshot({ path: `${SCREENSHOTS}-reconnect-done.png` });
    expect(errors).toEqual([]);
    await context.close();
  }, 120_000);

  it('Google, in Japanese: 再接続 shows the sign-in link; a pasted address of another run is refused, the right one connects', async () => {
    const client = 'desktop.apps.googleusercontent.com';
    const gmail = { name: 'gmail', type: 'gmail-oauth2', user: 'scanner@example.com', client_id: client, client_secret: 'desktop-secret', refresh_token: '1//revoked' };
    const { app, id, url } = await refusedUpstream({ clients: { [client]: 'desktop-secret' } }, gmail, 'google');
    const context = await getBrowser().newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'ja-JP' });
    const page = await context.newPage();
    const errors = watchErrors(page);
    await logIn(page, url);

    const button = page.locator('#upstreams li[data-state="auth_failed"] button.reconnect-button');
    await button.waitFor();
    expect(await button.textContent()).toBe('再接続');
    await button.click();
    const link = page.locator('#rc-paste-link a');
    await link.waitFor();
    expect(await link.textContent()).toBe('Google でサインイン');
    expect(await link.getAttribute('target')).toBe('_blank');
    expect(await page.locator('#rc-title').textContent()).toBe('gmail を再接続');

    // The consent page sends the browser to the loopback address, which it cannot reach.
    const landed = (await fetch((await link.getAttribute('href'))!, { redirect: 'manual' })).headers.get('location')!;
    const other = new URL(landed);
    other.searchParams.set('state', 'an-old-tab');
    await page.locator('#rc-url').fill(other.toString());
    await page.locator('#rc-paste-form button').click();
    await expect.poll(() => page.locator('#rc-status').textContent()).toBe('そのアドレスは別のサインインのものです（古いタブ？）。上のリンクをもう一度開いてサインインし、その後のアドレスを貼り付けてください。');
    expect(await page.locator('#rc-paste').isVisible()).toBe(true);
    await page.screenshot({ path: `${SCREENSHOTS}-reconnect-paste-ja.png` });

    await page.locator('#rc-url').fill(landed);
    await page.locator('#rc-paste-form button').click();
    await expect.poll(() => page.locator('#rc-status').textContent(), { timeout: 30_000 }).toMatch(/^接続しました。/);
    await waitFor(() => getMessage(app.spool.db, id)?.state === 'delivered', 30_000, 'the deferred message delivered');
    expect(errors).toEqual([]);
    await context.close();
  }, 120_000);
});
