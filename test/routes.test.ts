import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../src/config/load.js';
import { globToRegExp } from '../src/config/glob.js';
import { Router } from '../src/delivery/routes.js';
import { getMessage, listMessages } from '../src/spool/log.js';
import type { Upstream } from '../src/upstreams/types.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const smtp = (name: string, port: number) => ({ name, type: 'smtp', host: '127.0.0.1', port, security: 'none' });
const fake = (name: string) => ({ name }) as Upstream;
const noRewrite = { envelope_from: '', header_from: '' };

function problems(raw: Record<string, unknown>): string[] {
  try {
    validateConfig(raw);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

describe('routes config', () => {
  const upstreams = [smtp('google', 587), smtp('provider', 588)];

  it('takes the SPEC example', () => {
    const config = validateConfig(
      relayConfig(tempDir(), { upstreams, routes: [{ match: { from: '*@sensors.example.com' }, upstreams: ['provider', 'google'] }] }),
    );
    expect(config.routes).toEqual([{ match: { from: '*@sensors.example.com' }, upstreams: ['provider', 'google'] }]);
  });

  it('compares a Unicode domain in a pattern the way envelopes carry it (ASCII)', () => {
    const routes = [{ match: { to: '*@bücher.example' }, upstreams: ['provider'] }];
    const config = validateConfig(relayConfig(tempDir(), { upstreams, routes }));
    expect(config.routes![0]!.match.to).toBe('*@xn--bcher-kva.example');
    const router = new Router({ routes: config.routes!, upstreams: [fake('google'), fake('provider')], rewrite: noRewrite });
    expect(router.plan({ mailFrom: 'scanner@example.com', recipients: ['a@xn--bcher-kva.example'] }).map((g) => g.upstreams.map((u) => u.name))).toEqual([['provider']]);
  });

  it('names the key of an upstream that does not exist', () => {
    const routes = [{ match: { to: '*@example.com' }, upstreams: ['google', 'foo'] }];
    expect(problems(relayConfig(tempDir(), { upstreams, routes }))).toEqual(['routes[0].upstreams[1]: no upstream named "foo" (have: google, provider)']);
  });

  it('refuses rules that could never work', () => {
    const dir = tempDir();
    expect(problems(relayConfig(dir, { upstreams, routes: [{ match: {}, upstreams: [] }] }))).toEqual(['routes[0].upstreams: name at least one upstream']);
    expect(problems(relayConfig(dir, { upstreams, routes: [{ match: { from: '<a@b.com>' }, upstreams: ['google'] }] }))).toEqual([
      'routes[0].match.from: expected an address pattern like *@sensors.example.com',
    ]);
    expect(problems(relayConfig(dir, { upstreams, routes: [{ match: { sender: 'x' }, upstreams: ['google'] }] }))).toEqual(['routes[0].match.sender: unknown key']);
    expect(problems(relayConfig(dir, { upstreams, routes: [{ match: {}, upstreams: ['google', 'google'] }] }))).toEqual([
      'routes[0].upstreams[1]: upstream "google" is listed twice',
    ]);
  });
});

describe('globToRegExp', () => {
  it('matches whole addresses, case-insensitively, with * and ?', () => {
    const sensors = globToRegExp('*@sensors.example.com');
    expect(sensors.test('Temp-1@Sensors.Example.COM')).toBe(true);
    expect(sensors.test('temp@sensors.example.com.evil.net')).toBe(false);
    expect(sensors.test('temp@sensorsXexample.com')).toBe(false); // a dot is a dot
    expect(globToRegExp('ups?@example.com').test('ups2@example.com')).toBe(true);
    expect(globToRegExp('ups?@example.com').test('ups12@example.com')).toBe(false);
    expect(globToRegExp('*').test('')).toBe(true); // the empty sender of a bounce
  });
});

describe('Router.plan', () => {
  const all = [fake('google'), fake('provider'), fake('outbox')];
  const router = new Router({
    routes: [
      { match: { from: '*@sensors.example.com' }, upstreams: ['provider', 'outbox'] },
      { match: { to: '*@alerts.example.com' }, upstreams: ['outbox'] },
      { match: { from: 'ups@*', to: 'ops@*' }, upstreams: ['provider'] },
    ],
    upstreams: all,
    rewrite: noRewrite,
  });
  const names = (groups: ReturnType<Router['plan']>) => groups.map((g) => [g.rule, g.upstreams.map((u) => u.name), g.recipients]);

  it('sends every recipient through the first matching rule, the rest through every upstream', () => {
    expect(names(router.plan({ mailFrom: 't1@sensors.example.com', recipients: ['a@example.com', 'b@alerts.example.com'] }))).toEqual([
      [0, ['provider', 'outbox'], ['a@example.com', 'b@alerts.example.com']],
    ]);
    expect(names(router.plan({ mailFrom: 'scanner@example.com', recipients: ['a@example.com', 'pager@alerts.example.com', 'b@example.com'] }))).toEqual([
      [null, ['google', 'provider', 'outbox'], ['a@example.com', 'b@example.com']],
      [1, ['outbox'], ['pager@alerts.example.com']],
    ]);
  });

  it('needs both from and to when a rule has both', () => {
    expect(names(router.plan({ mailFrom: 'ups@power.example.com', recipients: ['ops@example.com', 'it@example.com'] }))).toEqual([
      [2, ['provider'], ['ops@example.com']],
      [null, ['google', 'provider', 'outbox'], ['it@example.com']],
    ]);
  });

  it('is every upstream in order without routes', () => {
    expect(names(new Router({ routes: [], upstreams: all, rewrite: noRewrite }).plan({ mailFrom: 'a@b.com', recipients: ['c@d.com'] }))).toEqual([[null, ['google', 'provider', 'outbox'], ['c@d.com']]]);
  });
});

describe('routes end to end', () => {
  async function three() {
    return Promise.all([TestUpstream.start(), TestUpstream.start(), TestUpstream.start()]);
  }

  it('routes a sender glob to the second upstream, and the rest to the first', async () => {
    const [first, second] = await three();
    const { port } = await startRelay(
      relayConfig(tempDir(), {
        upstreams: [smtp('first', first!.port), smtp('second', second!.port)],
        routes: [{ match: { from: '*@sensors.example.com' }, upstreams: ['second'] }],
      }),
    );
    await sendMail(port, { from: 'temp1@sensors.example.com', to: ['ops@example.com'], subject: 'hot' });
    await sendMail(port, { from: 'scanner@example.com', to: ['office@example.com'], subject: 'scan' });
    await second!.waitForMessages(1);
    await first!.waitForMessages(1);
    expect(second!.messages.map((m) => m.from)).toEqual(['temp1@sensors.example.com']);
    expect(first!.messages.map((m) => m.from)).toEqual(['scanner@example.com']);
  });

  it('uses every upstream in order when no rule matches: fail-over to the second', async () => {
    const [first, second] = await three();
    await first!.stop();
    const { app, port } = await startRelay(
      relayConfig(tempDir(), {
        upstreams: [smtp('first', first!.port), smtp('second', second!.port)],
        routes: [{ match: { from: '*@sensors.example.com' }, upstreams: ['first'] }],
      }),
    );
    await sendMail(port, { from: 'scanner@example.com', to: ['office@example.com'] });
    await second!.waitForMessages(1);
    const detail = await waitFor(() => {
      const d = getMessage(app.spool.db, listMessages(app.spool.db)[0]!.id);
      return d?.state === 'delivered' && d;
    });
    expect(detail.history.map((h) => [h.event, h.upstream])).toEqual([
      ['accepted', null],
      ['deferred', 'first'],
      ['delivered', 'second'],
    ]);
  });

  it('fails over within a route, never to an upstream outside it', async () => {
    const [primary, unlisted, backup] = await three();
    await primary!.stop();
    const { app, port } = await startRelay(
      relayConfig(tempDir(), {
        upstreams: [smtp('primary', primary!.port), smtp('unlisted', unlisted!.port), smtp('backup', backup!.port)],
        routes: [{ match: { to: '*@example.com' }, upstreams: ['primary', 'backup'] }],
      }),
    );
    await sendMail(port, { to: ['office@example.com'] });
    await backup!.waitForMessages(1);
    await waitFor(() => listMessages(app.spool.db)[0]?.state === 'delivered');
    expect(unlisted!.messages).toHaveLength(0);
  });

  it('splits one message by recipient when `to` rules differ', async () => {
    const [first, second] = await three();
    const { app, port } = await startRelay(
      relayConfig(tempDir(), {
        upstreams: [smtp('first', first!.port), smtp('second', second!.port)],
        routes: [{ match: { to: '*@alerts.example.com' }, upstreams: ['second'] }],
      }),
    );
    await sendMail(port, { to: ['ops@example.com', 'pager@alerts.example.com', 'it@example.com'] });
    await first!.waitForMessages(1);
    await second!.waitForMessages(1);
    expect(first!.messages[0]!.to.sort()).toEqual(['it@example.com', 'ops@example.com']);
    expect(second!.messages[0]!.to).toEqual(['pager@alerts.example.com']);
    // One message, two transactions: both copies are the same bytes (same Message-ID and Date).
    expect(first!.messages[0]!.sha256).toBe(second!.messages[0]!.sha256);
    const detail = await waitFor(() => {
      const d = getMessage(app.spool.db, listMessages(app.spool.db)[0]!.id);
      return d?.state === 'delivered' && d;
    });
    expect(detail.recipients.map((r) => [r.rcpt, r.upstream]).sort()).toEqual([
      ['it@example.com', 'first'],
      ['ops@example.com', 'first'],
      ['pager@alerts.example.com', 'second'],
    ]);
  });
});
