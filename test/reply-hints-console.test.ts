import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { listMessages } from '../src/spool/log.js';
import { useBrowser } from './helpers/browser.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { tempDir } from './helpers/tmp.js';

const getBrowser = useBrowser();

/** A port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('the console shows what to do next to the raw reply', () => {
  it('in the upstream card, the queue table (a mark with the hint on hover) and the message detail', async () => {
    const down = await closedPort();
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [{ name: 'isp', type: 'smtp', host: '127.0.0.1', port: down, security: 'none' }] }));
    await sendMail(port, { to: ['office@example.com'], subject: 'Scan 0002' });
    const waiting = await waitFor(() => listMessages(app.spool.db, { status: 'deferred' })[0], 15_000, 'a deferral');
    const reply = `connection refused by 127.0.0.1:${down} — nothing listens there (ECONNREFUSED)`;
    const hint = 'Nothing takes connections at 127.0.0.1 on that port: check host and port of upstream isp (587 for STARTTLS, 465 for TLS) and that the server is running';
    expect(waiting.lastReply).toBe(reply);

    const context = await getBrowser().newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${app.httpAddress!.port}/`);
    await page.locator('#console').waitFor({ state: 'visible' });

    const card = page.locator('#upstreams li');
    await expect.poll(() => card.locator('.error-text').textContent()).toContain(reply);
    expect(await card.locator('.hint').textContent()).toBe(`What to do: ${hint}`);

    const row = page.locator(`#messages tbody tr[data-id="${waiting.id}"]`);
    await expect.poll(() => row.count()).toBe(1);
    const replyCell = row.locator('td').nth(7);
    expect(await replyCell.textContent()).toBe(`${reply}fix`);
    expect(await replyCell.locator('.hint-mark').getAttribute('title')).toBe(hint);

    await row.locator('a').click();
    await page.locator('#detail-view').waitFor({ state: 'visible' });
    expect(await page.locator('#d-envelope').textContent()).toContain(`Last reply${reply}What to do${hint}`);
    const retries = page.locator('#d-history tr[data-event="deferred"]');
    expect(await retries.first().locator('td').nth(4).textContent()).toBe(`${reply}What to do: ${hint}`);
    // Said once for a run of the same reply, not on every retry.
    expect(await page.locator('#d-history .hint').count()).toBe(1);
    await page.screenshot({ path: '/tmp/relaybox-console-hint.png', fullPage: true });
    await context.close();
  }, 90_000); // a browser on a busy 2-core box
});
