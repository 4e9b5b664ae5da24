import { describe, expect, it, onTestFinished } from 'vitest';
import { openSpool } from '../src/spool/db.js';
import { listMessages } from '../src/spool/log.js';
import { relayConfig, spawnRelay as spawnRelayProcess, startRelay, waitFor } from './helpers/relay.js';
import { Mosquitto, publish, Watcher } from './helpers/mosquitto.js';
import { TestUpstream, type Received } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

function upstreamAt(up: TestUpstream) {
  return [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }];
}

/** The decoded subject and text of a simple message composeMessage made. */
function parse(m: Received): { subject: string; text: string; headers: string } {
  const raw = m.raw!.toString();
  const split = raw.indexOf('\r\n\r\n');
  const headers = raw.slice(0, split);
  const body = raw.slice(split + 4);
  const unfolded = headers.replace(/\r\n[ \t]+/g, ' ');
  const subjectLine = /^Subject: (.*)$/m.exec(unfolded)?.[1] ?? '';
  const subject = subjectLine.replace(/=\?utf-8\?Q\?(.*?)\?=\s*/gi, (_, q: string) =>
    Buffer.from(q.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (_x, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8'),
  );
  const qp = /Content-Transfer-Encoding: quoted-printable/i.test(unfolded);
  const text = qp
    ? Buffer.from(body.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/gi, (_x, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8')
    : body;
  return { subject, text, headers: unfolded };
}

/** relaybox subscribes before it says online, so once online shows, alerts are listened to. */
async function online(broker: Mosquitto): Promise<void> {
  const watcher = await Watcher.connect(broker.url, ['relaybox/+/availability']);
  await watcher.waitFor((w) => w.seen.at(-1)?.text === 'online', 10_000, 'relaybox online');
}

const rule = (overrides: Record<string, unknown> = {}) => ({
  topic: 'sensors/+/alert',
  to: ['ops@example.com'],
  subject: '{{segments.1}}: {{payload.message}} ({{payload.temp.c}} °C)',
  ...overrides,
});

/** spawnRelay, killed when the test ends however it ends (an afterEach registered inside a test never runs). */
async function spawnRelay(raw: Record<string, unknown>, dir: string) {
  const relay = await spawnRelayProcess(raw, dir);
  onTestFinished(() => {
    if (relay.child.exitCode === null && relay.child.signalCode === null) relay.child.kill('SIGKILL');
  });
  return relay;
}

describe('alerts in over MQTT', () => {
  it('turns an alert into a mail with the templated subject, spooled like any message', async () => {
    const broker = await Mosquitto.start();
    const up = await TestUpstream.start();
    const { app } = await startRelay(relayConfig(tempDir(), { upstreams: upstreamAt(up), mqtt: { url: broker.url, alerts: [rule({ from: 'sensors@example.com' })] } }));
    await online(broker);
    await publish(broker.url, 'sensors/freezer/alert', JSON.stringify({ message: 'door open', temp: { c: -4.5 } }));
    await publish(broker.url, 'other/freezer/alert', 'not for any rule');
    const [mail] = await up.waitForMessages(1);
    expect(mail).toMatchObject({ from: 'sensors@example.com', to: ['ops@example.com'] });
    const { subject, text, headers } = parse(mail!);
    expect(subject).toBe('freezer: door open (-4.5 °C)');
    expect(text).toContain('Alert on sensors/freezer/alert at ');
    expect(text).toContain('"message":"door open"');
    expect(headers).toMatch(/^Message-ID: <.+@relaybox\.test\.example>$/m);
    const [summary] = listMessages(app.spool.db);
    expect(summary).toMatchObject({ subject: 'freezer: door open (-4.5 °C)', from: 'sensors@example.com' });
    await new Promise((r) => setTimeout(r, 300));
    expect(up.messages).toHaveLength(1);
  });

  it('sends the first of a burst at once and the other 49 as one digest when min_interval ends', async () => {
    const broker = await Mosquitto.start();
    const up = await TestUpstream.start();
    await startRelay(relayConfig(tempDir(), { upstreams: upstreamAt(up), mqtt: { url: broker.url, alerts: [rule({ min_interval: '2s' })] } }));
    await online(broker);
    const started = Date.now();
    for (let i = 1; i <= 50; i++) await publish(broker.url, 'sensors/ups/alert', JSON.stringify({ message: `on battery #${i}`, temp: { c: i } }));
    const [first] = await up.waitForMessages(1);
    expect(parse(first!).subject).toBe('ups: on battery #1 (1 °C)');
    const all = await up.waitForMessages(2, 10_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    const digest = parse(all[1]!);
    expect(digest.subject).toBe('49 more alerts on sensors/ups/alert');
    for (let i = 2; i <= 50; i++) expect(digest.text).toContain(`on battery #${i}"`);
    expect(digest.text.match(/^\d{4}-\d\d-\d\dT/gm)).toHaveLength(49);
    await new Promise((r) => setTimeout(r, 2500)); // the window after the digest passes quietly
    expect(up.messages).toHaveLength(2);
    // Quiet again: the next alert goes out at once.
    await publish(broker.url, 'sensors/ups/alert', JSON.stringify({ message: 'back on mains', temp: { c: 0 } }));
    await up.waitForMessages(3, 3000);
  });

  it('acknowledges an alert only once it is spooled: one that could not be is sent again by the broker', async () => {
    const broker = await Mosquitto.start();
    const up = await TestUpstream.start();
    const { app } = await startRelay(relayConfig(tempDir(), { upstreams: upstreamAt(up), mqtt: { url: broker.url, alerts: [rule()] } }));
    const accept = app.spool.accept.bind(app.spool);
    let refusals = 0;
    app.spool.accept = async (...args: Parameters<typeof accept>) => {
      if (refusals++ === 0) throw new Error('disk full');
      return accept(...args);
    };
    await online(broker);
    await publish(broker.url, 'sensors/boiler/alert', JSON.stringify({ message: 'pressure low' }));
    const [mail] = await up.waitForMessages(1, 15_000);
    expect(parse(mail!).subject).toBe('boiler: pressure low ( °C)');
    expect(refusals).toBe(2);
  });

  it('keeps alerts that arrive while relaybox is down, and held digests across a kill -9', async () => {
    const broker = await Mosquitto.start();
    const up = await TestUpstream.start();
    const dir = tempDir();
    const raw = relayConfig(dir, { upstreams: upstreamAt(up), mqtt: { url: broker.url, alerts: [rule({ min_interval: '3s' })] } });
    const first = await spawnRelay(raw, dir);
    await online(broker);
    for (let i = 1; i <= 6; i++) await publish(broker.url, 'sensors/door/alert', JSON.stringify({ message: `open #${i}` }));
    await up.waitForMessages(1);
    const db = openSpool(dir, { readonly: true });
    try {
      await waitFor(() => (db.prepare('SELECT count(*) FROM alert_held').pluck().get() as number) === 5, 5000, '5 held alerts');
      // Killed once the first is recorded as delivered: a kill before that resends it (the core's at-least-once).
      await waitFor(() => db.prepare(`SELECT state FROM messages`).pluck().get() === 'delivered', 5000, 'first delivered');
    } finally {
      db.close();
    }
    first.child.kill('SIGKILL');
    await first.exited;
    // Published while nobody listens: the broker keeps it for relaybox's persistent session.
    await publish(broker.url, 'sensors/window/alert', JSON.stringify({ message: 'open while away' }));

    const second = await spawnRelay(raw, dir);
    const mails = await up.waitForMessages(3, 10_000);
    const subjects = mails.map((m) => parse(m).subject);
    expect(subjects.sort()).toEqual(['5 more alerts on sensors/door/alert', 'door: open #1 ( °C)', 'window: open while away ( °C)']);
    const digest = mails.map(parse).find((m) => m.subject === '5 more alerts on sensors/door/alert');
    expect(digest).toBeDefined();
    for (let i = 2; i <= 6; i++) expect(digest!.text).toContain(`open #${i}"`);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });
});
