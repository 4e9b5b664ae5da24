import { describe, expect, it } from 'vitest';
import { rateLimitsOf } from '../src/config/rate.js';
import { Pacing, pacedReason } from '../src/delivery/pacing.js';
import { openSpool } from '../src/spool/db.js';
import { getMessage, listMessages } from '../src/spool/log.js';
import { configProblems } from './helpers/config.js';
import { relayConfig, sendMail, spawnRelay, startRelay, waitFor } from './helpers/relay.js';
import { Mosquitto, Watcher } from './helpers/mosquitto.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const smtp = (name: string, port: number, rate?: Record<string, number>) => ({ name, type: 'smtp', host: '127.0.0.1', port, security: 'none', ...(rate ? { rate } : {}) });
const PACED = /^paced until (\d{4}-\d\d-\d\d )?\d\d:\d\d$/;

describe('pacing: the budget itself (a clock the test moves)', () => {
  const at = (t: number) => () => t;

  it('lets per_minute messages through, then says when the oldest leaves the window', () => {
    let now = 1_000_000;
    const pacing = new Pacing({ upstreams: [{ name: 'm365', type: 'smtp', rate: { per_minute: 3 } }], now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(pacing.take('m365', 1).go).toBe(true);
      now += 1_000;
    }
    expect(pacing.take('m365', 1)).toEqual({ go: false, until: 1_000_000 + 60_000 });
    now = 1_000_000 + 60_000;
    expect(pacing.take('m365', 1).go).toBe(true);
    expect(pacing.take('m365', 1)).toEqual({ go: false, until: 1_001_000 + 60_000 });
  });

  it('gives a backlog later and later times, so waiting messages come back one by one as room frees', () => {
    let now = 0;
    const pacing = new Pacing({ upstreams: [{ name: 'm365', type: 'smtp', rate: { per_minute: 2 } }], now: () => now });
    expect(pacing.take('m365', 1, 100).go).toBe(true);
    now = 1_000;
    expect(pacing.take('m365', 1, 101).go).toBe(true);
    expect(pacing.take('m365', 1, 102)).toEqual({ go: false, until: 60_000 });
    expect(pacing.take('m365', 1, 103)).toEqual({ go: false, until: 61_000 });
    expect(pacing.take('m365', 1, 104)).toEqual({ go: false, until: 120_000 }); // the next minute's first
    // A message asking again before its time keeps its place; one that is not in line goes last.
    now = 30_000;
    expect(pacing.take('m365', 1, 103)).toEqual({ go: false, until: 61_000 });
    now = 60_000;
    expect(pacing.take('m365', 1, 102).go).toBe(true);
    expect(pacing.take('m365', 1, 103)).toEqual({ go: false, until: 61_000 });
    now = 61_000;
    expect(pacing.take('m365', 1, 103).go).toBe(true);
    expect(pacing.take('m365', 1, 105)).toEqual({ go: false, until: 121_000 }); // behind 104
    now = 120_000;
    expect(pacing.take('m365', 1, 104).go).toBe(true);
  });

  it('gives back what an upstream did not take', () => {
    const pacing = new Pacing({ upstreams: [{ name: 'a', type: 'smtp', rate: { per_minute: 1 } }], now: at(5_000) });
    const first = pacing.take('a', 1);
    if (!first.go) throw new Error('expected a pass');
    first.settle(0); // the send failed: it does not use the budget
    expect(pacing.take('a', 1).go).toBe(true);
    expect(pacing.take('a', 1).go).toBe(false);
  });

  it('counts recipients per day: a message with more than remain waits whole; one larger than the limit goes alone when the window is empty', () => {
    let now = 10_000_000;
    const pacing = new Pacing({ upstreams: [{ name: 'g', type: 'smtp', rate: { recipients_per_day: 10 } }], now: () => now });
    expect(pacing.take('g', 8).go).toBe(true);
    now += 1_000;
    expect(pacing.take('g', 3)).toEqual({ go: false, until: 10_000_000 + 86_400_000 });
    expect(pacing.take('g', 2).go).toBe(true);
    // 25 recipients with a limit of 10: never possible within the limit, so it waits for an empty day.
    expect(pacing.take('g', 25)).toEqual({ go: false, until: 10_001_000 + 86_400_000 });
    now = 10_001_000 + 86_400_000;
    expect(pacing.take('g', 25).go).toBe(true);
  });

  it('leaves upstreams without limits alone, and a preset figure can be switched off per key', () => {
    const pacing = new Pacing({ upstreams: [{ name: 'f', type: 'file' }], now: at(0) });
    for (let i = 0; i < 100; i++) expect(pacing.take('f', 50).go).toBe(true);
    expect(rateLimitsOf({ type: 'microsoft365-oauth2', user: 'a@contoso.com' })).toEqual({ per_minute: 30, per_hour: 0, per_day: 0, recipients_per_day: 10_000 });
    expect(rateLimitsOf({ type: 'microsoft365-graph', user: 'a@contoso.com', rate: { per_minute: 0 } })).toEqual({ per_minute: 0, per_hour: 0, per_day: 0, recipients_per_day: 10_000 });
    expect(rateLimitsOf({ type: 'gmail-relay' })).toMatchObject({ recipients_per_day: 10_000 });
    expect(rateLimitsOf({ type: 'gmail-app-password', user: 'me@gmail.com' })).toMatchObject({ per_day: 500, recipients_per_day: 500 });
    expect(rateLimitsOf({ type: 'gmail-api', user: 'scanner@example.com', rate: { per_day: 100 } })).toMatchObject({ per_day: 100, recipients_per_day: 10_000 });
    expect(rateLimitsOf({ type: 'smtp' })).toEqual({ per_minute: 0, per_hour: 0, per_day: 0, recipients_per_day: 0 });
  });

  it('says the time in the box local time, with the date when not today', () => {
    const now = new Date(2026, 10, 27, 10, 30, 0).getTime();
    expect(pacedReason(new Date(2026, 10, 27, 10, 41, 20).getTime(), now)).toBe('paced until 10:42');
    expect(pacedReason(new Date(2026, 10, 28, 9, 5, 0).getTime(), now)).toBe('paced until 2026-11-28 09:05');
  });
});

describe('pacing: config', () => {
  it('names the key of a bad rate', () => {
    expect(configProblems('upstreams: [{ name: a, type: file, dir: x, rate: { per_minute: -1 } }]')).toEqual(['upstreams[0].rate.per_minute: expected 0 (no limit) or more']);
    expect(configProblems('upstreams: [{ name: a, type: file, dir: x }, { name: b, type: file, dir: y, rate: { per_hour: 2.5 } }]')).toEqual([
      'upstreams[1].rate.per_hour: expected a whole number (0 = no limit)',
    ]);
    expect(configProblems('upstreams: [{ name: a, type: file, dir: x, rate: { per_second: 3 } }]')[0]).toMatch(/^upstreams\[0\]\.rate\.per_second: unknown key/);
    expect(configProblems('upstreams: [{ name: a, type: file, dir: x, rate: { recipients_per_day: "many" } }]')[0]).toMatch(/^upstreams\[0\]\.rate\.recipients_per_day: expected a whole number/);
  });
});

describe('pacing: end to end over SMTP', () => {
  it('sends 3 of 5 under per_minute: 3, defers 2 as "paced until …" without counting them as failures or toward give_up_after, and delivers them when the minute frees', { timeout: 180_000 }, async () => {
    const up = await TestUpstream.start();
    const token = 'pace-token';
    const { app, port } = await startRelay(
      relayConfig(tempDir(), {
        http: { admin_token: token },
        upstreams: [smtp('m365', up.port, { per_minute: 3 })],
        // Shorter than the wait: a pacing wait must not fail the mail.
        delivery: { retry: { first: '200ms', max: '1s', give_up_after: '5s' }, shutdown_grace: '2s' },
      }),
    );
    for (let i = 0; i < 5; i++) await sendMail(port, { to: [`r${i}@example.com`], subject: `scan ${i}` });
    await up.waitForMessages(3, 30_000);
    const deferred = await waitFor(() => {
      const list = listMessages(app.spool.db, { status: 'deferred' });
      return list.length === 2 && list;
    }, 30_000, 'two paced messages');
    for (const m of deferred) {
      expect(m.lastReply).toMatch(PACED);
      expect(m.upstream).toBe('m365');
      expect(m.attempts).toBe(0); // no attempt: the backoff does not grow
    }
    expect(up.messages).toHaveLength(3);

    const status = (await (await fetch(`http://127.0.0.1:${app.httpAddress!.port}/api/status`, { headers: { Authorization: `Bearer ${token}` } })).json()) as { upstreams: Record<string, { state: string; rate?: unknown }> };
    expect(status.upstreams.m365.rate).toEqual({ per_minute: { limit: 3, used: 3, remaining: 0 } });
    expect(status.upstreams.m365.state).toBe('ok'); // paced is not down
    const metrics = await (await fetch(`http://127.0.0.1:${app.httpAddress!.port}/metrics`, { headers: { Authorization: `Bearer ${token}` } })).text();
    expect(metrics).toMatch(/^relaybox_upstream_rate_remaining\{upstream="m365",window="per_minute"\} 0$/m);
    expect(metrics).toMatch(/^relaybox_upstream_rate_limit\{upstream="m365",window="per_minute"\} 3$/m);

    // Once the minute frees, past give_up_after in wall time: a temporary refusal now is the first
    // real failure, not a reason to give up (the paced minute does not count).
    up.failData(451, '4.3.0 Temporary server error, try again later', 2);
    await up.waitForMessages(5, 150_000);
    await waitFor(() => listMessages(app.spool.db).every((m) => m.state === 'delivered'), 30_000, 'all delivered');
    expect(listMessages(app.spool.db, { status: 'failed' })).toHaveLength(0);
    expect(app.status.failedTotal).toBe(0);
    const history = deferred.flatMap((m) => getMessage(app.spool.db, m.id)!.history);
    expect(history.filter((h) => h.event === 'deferred' && h.reply?.startsWith('451'))).toHaveLength(2);
    expect(history.filter((h) => h.event === 'delivered')).toHaveLength(2);
  });

  it('fails over to the next upstream with budget left instead of waiting; MQTT status shows the budget', { timeout: 60_000 }, async () => {
    const broker = await Mosquitto.start();
    const primary = await TestUpstream.start();
    const backup = await TestUpstream.start();
    const { app, port } = await startRelay(
      relayConfig(tempDir(), { upstreams: [smtp('primary', primary.port, { per_hour: 2 }), smtp('backup', backup.port)], mqtt: { url: broker.url } }),
    );
    const watcher = await Watcher.connect(broker.url, ['relaybox/#']);
    for (let i = 0; i < 4; i++) await sendMail(port, { to: [`r${i}@example.com`] });
    await waitFor(() => listMessages(app.spool.db).filter((m) => m.state === 'delivered').length === 4, 30_000, 'four delivered');
    expect(primary.messages).toHaveLength(2);
    expect(backup.messages).toHaveLength(2);
    expect(app.status.snapshot().upstreams.primary!.rate).toEqual({ per_hour: { limit: 2, used: 2, remaining: 0 } });
    expect(app.status.snapshot().upstreams.backup!.rate).toBeUndefined();
    const status = await watcher.waitFor((w) => {
      const last = w.last('relaybox/relaybox_test_example/status');
      const parsed = last && (JSON.parse(last.text) as { upstreams: Record<string, { rate?: { per_hour?: { used: number } } }> });
      return parsed?.upstreams.primary?.rate?.per_hour?.used === 2 && parsed;
    }, 15_000, 'the budget over MQTT');
    expect(status.upstreams.primary!.rate).toEqual({ per_hour: { limit: 2, used: 2, remaining: 0 } });
    expect(status.upstreams.backup!.rate).toBeUndefined();
  });

  it('keeps the count over a restart (from the delivery log)', { timeout: 90_000 }, async () => {
    const up = await TestUpstream.start();
    const dir = tempDir();
    const config = relayConfig(dir, { upstreams: [smtp('m365', up.port, { per_hour: 2 })] });
    const first = await spawnRelay(config, dir);
    await sendMail(first.port, { to: ['a@example.com'] });
    await sendMail(first.port, { to: ['b@example.com'] });
    await up.waitForMessages(2, 30_000);
    const spool = openSpool(dir, { readonly: true });
    await waitFor(() => listMessages(spool).filter((m) => m.state === 'delivered').length === 2, 30_000, 'two delivered');
    first.child.kill('SIGTERM');
    await first.exited;

    const second = await spawnRelay(config, dir);
    await sendMail(second.port, { to: ['c@example.com'] });
    const waiting = await waitFor(() => listMessages(spool, { status: 'deferred' })[0], 30_000, 'the third paced');
    expect(waiting.lastReply).toMatch(PACED);
    expect(up.messages).toHaveLength(2);
    spool.close();
    second.child.kill('SIGTERM');
    await second.exited;
  });
});
