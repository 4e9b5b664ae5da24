import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import type { RelayApp } from '../src/app.js';
import { listMessages } from '../src/spool/log.js';
import { useBrowser } from './helpers/browser.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const TOKEN = 'browser-test-token';
const XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';
/** Where the screenshots go; look at them after a change to the console. */
export const SCREENSHOTS = '/tmp/relaybox-console';

const getBrowser = useBrowser();

async function relayWithMail(token = TOKEN): Promise<{ app: RelayApp; up: TestUpstream; failedId: number; url: string }> {
  const up = await TestUpstream.start();
  const { app, port } = await startRelay(
    relayConfig(tempDir(), {
      http: { admin_token: token },
      upstreams: [{ name: 'google', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }],
    }),
  );
  await sendMail(port, { from: 'scanner@office.example', to: ['office@example.com'], subject: 'Scan 0001 見積書' });
  await waitFor(() => listMessages(app.spool.db, { status: 'delivered' }).length === 1);
  up.failData(550, '5.7.1 Messages from this sender are rejected by policy');
  await sendMail(port, { from: 'mfp@office.example', to: ['boss@example.com', 'team@example.com'], subject: XSS });
  const failed = await waitFor(() => listMessages(app.spool.db, { status: 'failed' })[0]);
  return { app, up, failedId: failed.id, url: `http://127.0.0.1:${app.httpAddress!.port}/` };
}

/** Fails the test on any script error or CSP violation the page reports. */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/status of 401/.test(msg.text())) errors.push(`console: ${msg.text()}`);
  });
  return errors;
}

async function logIn(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.locator('#token').fill('wrong');
  await page.locator('#login-form button').click();
  await expect.poll(() => page.locator('#login-error').textContent()).toBe('Wrong token.');
  await page.locator('#token').fill(TOKEN);
  await page.locator('#login-form button').click();
  await page.locator('#console').waitFor({ state: 'visible' });
}

describe('web console in headless Chromium', () => {
  it('logs in, shows delivered and failed mail, retries the failed one until it is delivered', async () => {
    const { app, up, failedId, url } = await relayWithMail();
    const context = await getBrowser().newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    const page = await context.newPage();
    const errors = watchErrors(page);
    const response = await page.goto(url);
    expect(response!.headers()['content-security-policy']).toMatch(/default-src 'self'.*frame-ancestors 'none'/);
    expect(response!.headers()['x-content-type-options']).toBe('nosniff');
    await page.locator('#login').waitFor({ state: 'visible' });
    expect(await page.locator('#console').isVisible()).toBe(false);
    await page.screenshot({ path: `${SCREENSHOTS}-login.png` });
    await logIn(page, url);

    const rows = page.locator('#messages tbody tr');
    await expect.poll(() => rows.count()).toBe(2);
    await expect.poll(() => page.locator('#state').textContent()).toBe('Degraded');
    expect(await page.locator('#q-failed').textContent()).toBe('1');
    expect(await page.locator('#upstreams li .name').textContent()).toBe('google');
    expect(await page.locator('#upstreams li .when').textContent()).toMatch(/^Last success: \d/);
    const failedRow = page.locator(`#messages tbody tr[data-id="${failedId}"]`);
    expect(await failedRow.getAttribute('data-state')).toBe('failed');
    expect(await page.locator('#messages tbody tr[data-state="delivered"] td').nth(3).textContent()).toBe('Scan 0001 見積書');
    // The device's markup is shown as text, never run.
    expect(await failedRow.locator('td').nth(3).textContent()).toBe(XSS);
    expect(await page.locator('#messages img').count()).toBe(0);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(await failedRow.locator('td').nth(7).textContent()).toBe('550 5.7.1 Messages from this sender are rejected by policy');

    // The text filter and the state filter narrow the list.
    await page.locator('#f-text').fill('scanner@');
    await expect.poll(() => rows.count()).toBe(1);
    await page.locator('#f-text').fill('');
    await page.locator('#f-state').selectOption('failed');
    await expect.poll(() => rows.count()).toBe(1);
    await page.locator('#f-state').selectOption('');
    await expect.poll(() => rows.count()).toBe(2);
    await page.screenshot({ path: `${SCREENSHOTS}-desktop.png`, fullPage: true });

    // The CSV export downloads with the session cookie.
    await page.locator('summary[data-i18n="export.title"]').click();
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#export button').click()]);
    expect(download.suggestedFilename()).toMatch(/^relaybox-log-\d{8}-\d{4}\.csv$/);
    const csv = readFileSync((await download.path())!);
    expect([...csv.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    expect(csv.toString('utf8')).toContain('Scan 0001 見積書');

    await failedRow.locator('a').click();
    await page.locator('#detail-view').waitFor({ state: 'visible' });
    expect(await page.locator('#d-subject').textContent()).toBe(XSS);
    expect(await page.locator('#d-headers').textContent()).toContain(`Subject: ${XSS}`);
    expect(await page.locator('#d-history tr[data-event="failed"] td').nth(4).textContent()).toMatch(/^550 5\.7\.1/);
    expect(await page.locator('#d-envelope').textContent()).toContain('mfp@office.example');
    expect(await page.locator('#d-drop').isVisible()).toBe(true); // a failed message can be dropped too
    await page.screenshot({ path: `${SCREENSHOTS}-detail.png`, fullPage: true });

    up.failData(null); // the upstream recovers
    // A 550 will most likely come again: Retry asks first, and "no" leaves the message as it is.
    const asked: string[] = [];
    page.once('dialog', (d) => {
      asked.push(d.message());
      void d.dismiss();
    });
    await page.locator('#d-retry').click();
    await expect.poll(() => asked.length).toBe(1);
    expect(asked[0]).toBe('The upstream refused this recipient permanently (boss@example.com, team@example.com); retrying will most likely fail again. Retry anyway?');
    expect(listMessages(app.spool.db, { status: 'failed' })).toHaveLength(1);
    page.once('dialog', (d) => void d.accept());
    await page.locator('#d-retry').click();
    await expect.poll(() => page.locator('#d-state').getAttribute('data-state'), { timeout: 10_000 }).toBe('delivered');
    await up.waitForMessages(2);
    expect(up.messages[1]!.to.sort()).toEqual(['boss@example.com', 'team@example.com']);
    expect(await page.locator('#d-retry').isVisible()).toBe(false);
    expect(await page.locator('#d-history tr[data-event="delivered"]').count()).toBe(1);

    await page.locator('.back').click();
    await expect.poll(() => page.locator('#messages tbody tr[data-state="delivered"]').count()).toBe(2);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(errors).toEqual([]);
    expect(listMessages(app.spool.db, { status: 'failed' })).toHaveLength(0);
    await context.close();
  });

  it('speaks Japanese to a Japanese browser and fits a phone screen (no token: loopback, no login)', async () => {
    const { failedId, url } = await relayWithMail('');
    const context = await getBrowser().newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'ja-JP' });
    const page = await context.newPage();
    const errors = watchErrors(page);
    await page.goto(url);
    await page.locator('#console').waitFor({ state: 'visible' });
    expect(await page.locator('#logout').isVisible()).toBe(false);
    expect(await page.evaluate('document.documentElement.lang')).toBe('ja');
    await expect.poll(() => page.locator('#state').textContent()).toBe('一部異常');
    expect(await page.locator('#list-view h2').textContent()).toBe('メール');
    await expect.poll(() => page.locator('#messages tbody tr').count()).toBe(2);
    expect(await page.locator(`#messages tbody tr[data-id="${failedId}"] .pill`).textContent()).toBe('失敗');
    // Nothing is wider than the phone: no sideways scrolling.
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await page.screenshot({ path: `${SCREENSHOTS}-phone.png`, fullPage: true });
    await page.locator(`#messages tbody tr[data-id="${failedId}"] a`).click();
    await page.locator('#detail-view').waitFor({ state: 'visible' });
    expect(await page.locator('#d-retry').textContent()).toBe('再送');
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await page.screenshot({ path: `${SCREENSHOTS}-phone-detail.png`, fullPage: true });
    page.once('dialog', (dialog) => void dialog.accept()); // "Drop message N?"
    await page.locator('#d-drop').click();
    await expect.poll(() => page.locator('#d-state').getAttribute('data-state')).toBe('dropped');
    expect(await page.locator('#d-notice').textContent()).toBe('破棄しました。');
    expect(errors).toEqual([]);
    await context.close();
  });
});
