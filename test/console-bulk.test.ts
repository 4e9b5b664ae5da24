import { mkdirSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import type { RelayApp } from '../src/app.js';
import type { UpstreamState } from '../src/health/tracker.js';
import { listMessages } from '../src/spool/log.js';
import { useBrowser } from './helpers/browser.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

/** `RELAYBOX_SCREENSHOTS=docs/screenshots` refreshes the README's pictures; by default they go to /tmp. */
const SHOTS = process.env.RELAYBOX_SCREENSHOTS ?? '/tmp/relaybox-console-bulk';
const DEFERRED = 12;
const SLOW = 60_000;
const ADDRESS = 'scanner-2nd-floor@branch-office.example-corp.co.jp';

const getBrowser = useBrowser();

/** Every upstream state, by the type: one added there and not here fails to compile. */
const UPSTREAM_STATES = Object.keys({ unknown: 1, ok: 1, down: 1, auth_failed: 1, quota: 1, clock: 1, ehlo_rejected: 1 } satisfies Record<UpstreamState, 1>);

/** The console's words for every upstream state, in the page's language. */
function upstreamWords(page: Page): Promise<string[]> {
  return page.evaluate(`import('/assets/i18n.js').then((m) => ${JSON.stringify(UPSTREAM_STATES)}.map((s) => m.t('upstream.' + s)))`);
}

/** A relay whose upstream says 451 to everything and 550 to one recipient: 12 deferred, 1 failed. */
async function relayWithQueue(): Promise<{ app: RelayApp; up: TestUpstream; url: string }> {
  const up = await TestUpstream.start();
  up.failData(451, '4.7.0 Temporary system problem, try again later');
  up.rejectRecipient('nobody@example.com', 550, '5.1.1 The email account that you tried to reach does not exist');
  const { app, port } = await startRelay(
    relayConfig(tempDir(), {
      upstreams: [{ name: 'google', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }],
      delivery: { retry: { first: '1h', max: '1h', give_up_after: '2h' }, shutdown_grace: '2s' },
    }),
  );
  await sendMail(port, { from: ADDRESS, to: ['nobody@example.com'], subject: 'Scan to an old address' });
  for (let i = 1; i <= DEFERRED; i++) await sendMail(port, { from: ADDRESS, to: [`accounts-payable-${i}@customer-site.example.com`], subject: `Scan ${String(i).padStart(4, '0')} 請求書` });
  await waitFor(() => listMessages(app.spool.db, { status: 'deferred' }).length === DEFERRED && listMessages(app.spool.db, { status: 'failed' }).length === 1, SLOW);
  return { app, up, url: `http://127.0.0.1:${app.httpAddress!.port}/` };
}

async function open(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.locator('#console').waitFor({ state: 'visible' });
  await expect.poll(() => page.locator('#q-deferred').textContent()).toBe(String(DEFERRED));
}

/**
 * Addresses in the list that a line ends inside of at a hyphen, and how many wrap at all: the top
 * of each character's box, read in the page (a string: the tests compile without the DOM's types).
 */
const ADDRESS_BREAKS = `(() => {
  const atHyphen = [];
  let wrapped = 0;
  for (const cell of document.querySelectorAll('#messages tbody td:nth-child(2), #messages tbody td:nth-child(3)')) {
    const chars = [];
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      for (let i = 0; i < node.length; i++) {
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const rect = range.getClientRects()[0];
        if (rect) chars.push({ c: node.data[i], top: Math.round(rect.top) });
      }
    }
    if (new Set(chars.map((x) => x.top)).size > 1) wrapped++;
    if (chars.some((x, i) => x.c === '-' && chars[i + 1] && chars[i + 1].top > x.top + 2)) atHyphen.push(cell.textContent);
  }
  return { atHyphen, wrapped };
})()`;

describe('console: cards that filter, bulk retry, a phone page that stays short', () => {
  it('filters by card (mouse and keyboard), retries every deferred message after a confirm, and pages on a phone', async () => {
    const { app, up, url } = await relayWithQueue();
    mkdirSync(SHOTS, { recursive: true });

    const desk = await getBrowser().newContext({ viewport: { width: 1280, height: 720 }, locale: 'en-US' });
    const page = await desk.newPage();
    await open(page, url);
    const rows = page.locator('#messages tbody tr');
    await expect.poll(() => rows.count()).toBe(DEFERRED + 1);
    // Each card says what it counts; the oldest counts the deferred ones too, and says so.
    expect(await page.locator('#q-queued').evaluate((el) => el.previousElementSibling!.textContent)).toBe('Sending now');
    expect(await page.locator('#q-oldest').evaluate((el) => el.previousElementSibling!.textContent)).toBe('Oldest undelivered (sending or deferred)');
    await page.screenshot({ path: `${SHOTS}/dashboard-en.png` });

    // The same in Japanese.
    const ja = await getBrowser().newContext({ viewport: { width: 1280, height: 720 }, locale: 'ja-JP' });
    const jaPage = await ja.newPage();
    await jaPage.goto(url);
    await expect.poll(() => jaPage.locator('#messages tbody tr').count()).toBe(DEFERRED + 1);
    expect(await jaPage.locator('.card[data-filter="failed"] .label').textContent()).toBe('失敗（要対応）');
    expect(await jaPage.locator('#retry-all').textContent()).toBe('再送待ちと失敗をすべて再送');
    await jaPage.screenshot({ path: `${SHOTS}/dashboard-ja.png` });
    // Every upstream state has words of its own in both languages (`clock` had none).
    const [enWords, jaWords] = [await upstreamWords(page), await upstreamWords(jaPage)];
    for (const words of [enWords, jaWords]) expect(words.filter((w) => w.startsWith('upstream.'))).toEqual([]);
    expect(jaWords.filter((w, i) => w === enWords[i])).toEqual([]);
    expect(jaWords[UPSTREAM_STATES.indexOf('unknown')]).toBe('未確認');
    await ja.close();

    // A pending recipient says why it waits: the reply of its last deferral.
    await rows.filter({ hasText: 'accounts-payable-3@' }).locator('a').click();
    const pending = page.locator('#d-recipients tr[data-state="pending"]');
    await expect.poll(() => pending.locator('td').nth(3).textContent()).toMatch(/^451 4\.7\.0 Temporary system problem/);
    expect(await pending.locator('td').nth(2).textContent()).toBe('google');
    await page.locator('.back').click();
    await expect.poll(() => rows.count()).toBe(DEFERRED + 1);

    const deferredCard = page.locator('.card[data-filter="deferred"]');
    await deferredCard.click();
    await expect.poll(() => rows.count()).toBe(DEFERRED);
    expect(await page.locator('#messages tbody tr:not([data-state="deferred"])').count()).toBe(0);
    expect(await deferredCard.getAttribute('aria-pressed')).toBe('true');
    expect(await page.locator('#f-state').inputValue()).toBe('deferred');
    const failedCard = page.locator('.card[data-filter="failed"]');
    await failedCard.focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().getAttribute('data-state')).toBe('failed');
    expect(await deferredCard.getAttribute('aria-pressed')).toBe('false');
    await page.keyboard.press('Space'); // the same card again: every state
    await expect.poll(() => rows.count()).toBe(DEFERRED + 1);

    // Retry all deferred: asked first; a "no" changes nothing.
    const questions: string[] = [];
    page.once('dialog', (d) => {
      questions.push(d.message());
      void d.dismiss();
    });
    await page.locator('#retry-deferred').click();
    await expect.poll(() => questions.length).toBe(1);
    expect(questions[0]).toBe(`Try all ${DEFERRED} deferred messages again now?`);
    expect(listMessages(app.spool.db, { status: 'deferred' })).toHaveLength(DEFERRED);
    up.failData(null);
    page.once('dialog', (d) => void d.accept());
    await page.locator('#retry-deferred').click();
    await up.waitForMessages(DEFERRED, SLOW);
    await waitFor(() => listMessages(app.spool.db, { status: 'delivered' }).length === DEFERRED, SLOW);
    expect(await page.locator('#bulk-notice').textContent()).toBe(`${DEFERRED} message(s) queued again; delivering…`);
    expect(listMessages(app.spool.db, { status: 'failed' })).toHaveLength(1); // "deferred" leaves the failed alone
    await expect.poll(() => page.locator('#retry-deferred').isHidden(), { timeout: SLOW }).toBe(true);
    await desk.close();

    // A phone: 10 rows a page, "more" for the rest; addresses wrap, but not at a hyphen.
    const phone = await getBrowser().newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, locale: 'en-US' });
    const small = await phone.newPage();
    await small.goto(url);
    const phoneRows = small.locator('#messages tbody tr');
    await expect.poll(() => phoneRows.count()).toBe(10);
    expect(await small.locator('#more').isVisible()).toBe(true);
    await small.screenshot({ path: `${SHOTS}/dashboard-phone.png` });
    const breaks = (await small.evaluate(ADDRESS_BREAKS)) as { atHyphen: string[]; wrapped: number };
    expect(breaks.wrapped).toBeGreaterThan(0); // the phone is narrow enough that addresses do wrap
    expect(breaks.atHyphen).toEqual([]);
    await small.locator('#more').click();
    await expect.poll(() => phoneRows.count()).toBe(DEFERRED + 1);
    expect(await small.locator('#more').isVisible()).toBe(false);
    expect(await small.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await phone.close();
  }, 240_000);
});
