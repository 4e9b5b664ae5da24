import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { listMessages } from '../src/spool/log.js';
import { useBrowser } from './helpers/browser.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const TOKEN = 'pacing-console-token';
const getBrowser = useBrowser();

async function upstreamCards(url: string, locale: string): Promise<{ page: Page; errors: string[] }> {
  const context = await getBrowser().newContext({ viewport: { width: 1280, height: 900 }, locale });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(url);
  await page.locator('#token').fill(TOKEN);
  await page.locator('#login-form button').click();
  await page.locator('#console').waitFor({ state: 'visible' });
  await page.locator('#upstreams li').first().waitFor();
  return { page, errors };
}

describe('console: what is left of an upstream sending limits', () => {
  it('shows the budget on the upstream card, in English and Japanese, and none for an upstream without limits', { timeout: 90_000 }, async () => {
    const up = await TestUpstream.start();
    const spare = await TestUpstream.start();
    const { app, port } = await startRelay(
      relayConfig(tempDir(), {
        http: { admin_token: TOKEN },
        upstreams: [
          { name: 'm365', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none', rate: { per_minute: 30, recipients_per_day: 10_000 } },
          { name: 'spare', type: 'smtp', host: '127.0.0.1', port: spare.port, security: 'none' },
        ],
      }),
    );
    await sendMail(port, { to: ['a@example.com', 'b@example.com'] });
    await waitFor(() => listMessages(app.spool.db, { status: 'delivered' }).length === 1, 30_000, 'delivered');
    const url = `http://127.0.0.1:${app.httpAddress!.port}/`;

    const en = await upstreamCards(url, 'en-US');
    const card = en.page.locator('#upstreams li', { hasText: 'm365' });
    await expect.poll(() => card.locator('.budget').textContent(), { timeout: 15_000 }).toBe('Budget: 29 of 30 this minute · 9,998 of 10,000 recipients today');
    expect(await en.page.locator('#upstreams li', { hasText: 'spare' }).locator('.budget').count()).toBe(0);
    expect(en.errors).toEqual([]);

    const ja = await upstreamCards(url, 'ja-JP');
    await expect
      .poll(() => ja.page.locator('#upstreams li', { hasText: 'm365' }).locator('.budget').textContent(), { timeout: 15_000 })
      .toBe('送信枠: 1分間 30 通中 残り 29 通・24時間 宛先 10,000 件中 残り 9,998 件');
    expect(ja.errors).toEqual([]);
  });
});
