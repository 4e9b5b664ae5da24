import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSpool } from '../src/spool/db.js';
import { listMessages } from '../src/spool/log.js';
import { useBrowser } from './helpers/browser.js';
import { freePort } from './helpers/mosquitto.js';
import { relayConfig, sendMail, spawnRelay, startRelay, waitFor } from './helpers/relay.js';
import { tempDir } from './helpers/tmp.js';

const getBrowser = useBrowser();

/** A primary nobody listens on (the first message finds it down) and a file outbox that works. */
async function failingOverConfig(dir: string): Promise<Record<string, any>> {
  return relayConfig(dir, {
    upstreams: [
      { name: 'primary', type: 'smtp', host: '127.0.0.1', port: await freePort(), security: 'none' },
      { name: 'outbox', type: 'file', dir: join(dir, 'outbox') },
    ],
  });
}

describe('what the status knows survives a restart', () => {
  it('keeps each upstream health and the totals, also after the log was pruned, and the console shows them', { timeout: 60_000 }, async () => {
    const dir = tempDir();
    const config = await failingOverConfig(dir);
    const first = await startRelay(config);
    for (let i = 1; i <= 3; i++) await sendMail(first.port, { to: ['a@example.com', 'b@example.com'], subject: `scan ${i}` });
    const before = await waitFor(() => {
      const s = first.app.status.snapshot();
      return s.delivered_total === 6 && s.upstreams.primary!.state === 'down' && s;
    }, 20_000, 'three messages delivered through the outbox');
    // Everything delivered is old enough to prune: the log rows the totals were counted from go.
    expect(first.app.spool.prune(Date.now() + 60_000)).toBe(3);
    await first.app.stop();

    const second = await startRelay(config);
    const after = second.app.status.snapshot();
    expect(after.delivered_total).toBe(6);
    expect(after.upstreams.outbox).toMatchObject({ state: 'ok', last_ok: before.upstreams.outbox!.last_ok });
    expect(after.upstreams.primary).toMatchObject({
      state: 'down',
      last_error: before.upstreams.primary!.last_error,
      last_error_at: before.upstreams.primary!.last_error_at,
      next_probe_at: null,
    });

    const page = await (await getBrowser().newContext({ locale: 'en-US' })).newPage();
    await page.goto(`http://127.0.0.1:${second.app.httpAddress!.port}/`);
    await expect.poll(() => page.locator('#q-delivered').textContent()).toBe('6');
    const outbox = page.locator('li.upstream', { hasText: 'outbox' });
    await expect.poll(() => outbox.locator('.when').textContent()).toMatch(/^Last success: (?!never)/);
    await expect.poll(() => page.locator('li.upstream[data-state="down"] .name').textContent()).toBe('primary');

    // And the count goes on from there.
    await sendMail(second.port, { to: ['c@example.com'] });
    await waitFor(() => second.app.status.snapshot().delivered_total === 7, 20_000, 'the fourth message delivered');
  });

  it('counts what was delivered before a crash (SIGKILL, nothing stored at exit)', async () => {
    const dir = tempDir();
    const config = await failingOverConfig(dir);
    const relay = await spawnRelay(config, dir);
    await sendMail(relay.port, { to: ['a@example.com'] });
    await sendMail(relay.port, { to: ['b@example.com', 'c@example.com'] });
    const spool = openSpool(dir, { readonly: true });
    await waitFor(() => listMessages(spool, { status: 'delivered' }).length === 2, 20_000, 'two messages delivered');
    spool.close();
    relay.child.kill('SIGKILL');
    await relay.exited;

    const { app } = await startRelay(config);
    const s = app.status.snapshot();
    expect(s.delivered_total).toBe(3);
    expect(s.upstreams.outbox!.state).toBe('ok');
    expect(s.upstreams.outbox!.last_ok).not.toBeNull();
  });
});
