import { describe, expect, it, onTestFinished } from 'vitest';
import { relayConfig, sendMail, spawnRelay as spawnRelayProcess, startRelay, waitFor } from './helpers/relay.js';
import { Mosquitto, Watcher } from './helpers/mosquitto.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const P = 'relaybox/relaybox_test_example'; // topic_prefix / node_id from hostname relaybox.test.example

function smtpUpstream(name: string, port: number) {
  return { name, type: 'smtp', host: '127.0.0.1', port, security: 'none' };
}

function statusOf(w: Watcher): any {
  const last = w.last(`${P}/status`);
  return last && JSON.parse(last.text);
}

function eventsOf(w: Watcher): any[] {
  return w.on(`${P}/events`).map((s) => JSON.parse(s.text));
}

/** spawnRelay, killed when the test ends however it ends (an afterEach registered inside a test never runs). */
async function spawnRelay(raw: Record<string, unknown>, dir: string) {
  const relay = await spawnRelayProcess(raw, dir);
  onTestFinished(() => {
    if (relay.child.exitCode === null && relay.child.signalCode === null) relay.child.kill('SIGKILL');
  });
  return relay;
}

describe('status over MQTT', () => {
  it('says online, publishes the status, an event per state change and Home Assistant discovery', async () => {
    const broker = await Mosquitto.start();
    const up = await TestUpstream.start();
    up.rejectRecipient('nobody@example.com', 550, '5.1.1 No such user');
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtpUpstream('primary', up.port)], mqtt: { url: broker.url } }));
    const watcher = await Watcher.connect(broker.url, ['relaybox/#', 'homeassistant/#']);

    await watcher.waitFor((w) => w.last(`${P}/availability`)?.text === 'online', 10_000, 'online');
    const first = await watcher.waitFor(statusOf, 10_000, 'a status');
    expect(Object.keys(first)).toEqual(['state', 'queue', 'upstreams', 'delivered_total', 'failed_total', 'version', 'uptime_s', 'disk']);
    expect(first.queue).toEqual({ queued: 0, deferred: 0, failed: 0, oldest_age_s: 0 });
    expect(first.upstreams.primary).toMatchObject({ state: 'unknown', last_ok: null, last_error: null });

    await sendMail(port, { to: ['a@example.com'] });
    await sendMail(port, { to: ['nobody@example.com'] });
    const events = await watcher.waitFor((w) => {
      const e = eventsOf(w);
      return e.some((x) => x.event === 'delivered') && e.some((x) => x.event === 'failed') && e;
    }, 10_000, 'delivered and failed events');
    expect(events.filter((e) => e.event === 'accepted')).toHaveLength(2);
    for (const e of events) {
      expect(Object.keys(e)).toEqual(['id', 'event', 'upstream', 'reply', 'hint', 'at']);
      expect(new Date(e.at).toISOString()).toBe(e.at);
    }
    expect(events.find((e) => e.event === 'delivered')).toMatchObject({ upstream: 'primary', reply: expect.stringMatching(/^250/) });
    expect(events.find((e) => e.event === 'failed')).toMatchObject({ upstream: 'primary', reply: expect.stringMatching(/^550 5\.1\.1/) });
    expect(watcher.on(`${P}/events`).every((s) => !s.retain)).toBe(true);

    const settled = await watcher.waitFor((w) => {
      const s = statusOf(w);
      return s?.delivered_total === 1 && s.failed_total === 1 && s;
    }, 5000, 'status with the totals');
    expect(settled).toMatchObject({ state: 'degraded', queue: { queued: 0, deferred: 0, failed: 1 }, upstreams: { primary: { state: 'ok' } } });

    // Discovery: read back as a new subscriber would (retained), one device, every entity tied to availability.
    const fresh = await Watcher.connect(broker.url, ['homeassistant/#']);
    const configs = await fresh.waitFor((w) => w.seen.length >= 9 && w.seen, 5000, 'discovery configs');
    const topics = configs.map((c) => c.topic).sort();
    expect(topics).toContain('homeassistant/sensor/relaybox_test_example/queued/config');
    expect(topics).toContain('homeassistant/binary_sensor/relaybox_test_example/upstream_primary/config');
    for (const c of configs) {
      expect(c.retain).toBe(true);
      const payload = JSON.parse(c.text);
      expect(payload.unique_id).toMatch(/^relaybox_relaybox_test_example_/);
      expect(payload.device).toMatchObject({ identifiers: ['relaybox_relaybox_test_example'], name: 'relaybox relaybox_test_example' });
      expect(payload).toMatchObject({ availability_topic: `${P}/availability`, state_topic: `${P}/status` });
      expect(payload.value_template).toMatch(/value_json/);
    }
    const byObject = Object.fromEntries(configs.map((c) => [c.topic.split('/')[3], JSON.parse(c.text)]));
    expect(byObject.delivered_total.state_class).toBe('total_increasing');
    expect(byObject.oldest_age).toMatchObject({ device_class: 'duration', unit_of_measurement: 's' });
    expect(byObject.upstream_primary).toMatchObject({ device_class: 'connectivity', entity_category: 'diagnostic' });
    expect(new Set(configs.map((c) => JSON.parse(c.text).unique_id)).size).toBe(configs.length);

    await app.stop();
    await watcher.waitFor((w) => w.last(`${P}/availability`)?.text === 'offline', 5000, 'offline on a clean stop');
  });

  it('shows mail waiting for a down upstream as deferred, at most one status a second', async () => {
    const broker = await Mosquitto.start();
    const up = await TestUpstream.start();
    await up.stop();
    const { port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtpUpstream('primary', up.port)], mqtt: { url: broker.url } }));
    const watcher = await Watcher.connect(broker.url, [`${P}/#`]);
    await watcher.waitFor(statusOf, 10_000, 'a status');
    for (let i = 0; i < 5; i++) await sendMail(port, { to: [`a${i}@example.com`] });
    const status = await watcher.waitFor((w) => statusOf(w)?.queue.deferred === 5 && statusOf(w), 10_000, 'deferred 5');
    expect(status.state).toBe('down');
    expect(status.upstreams.primary.state).toBe('down');
    expect(status.upstreams.primary.last_error).toBeTruthy();
    // Retries keep changing the status; live publishes only (a retained copy comes whenever a subscriber joins).
    const live = () => watcher.on(`${P}/status`).filter((s) => !s.retain);
    await watcher.waitFor(() => live().length >= 4, 10_000, 'more status publishes');
    const times = live().map((s) => s.at);
    // Many changes (5 accepted, 5 deferred, retries) but never two publishes closer than ~1 s (network jitter allowed).
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThan(800);
  });

  it('leaves the will (offline) when killed with -9, and says offline itself on SIGTERM, never logging the password', async () => {
    const broker = await Mosquitto.start();
    const dir = tempDir();
    const watcher = await Watcher.connect(broker.url, [`${P}/availability`]);
    const raw = relayConfig(dir, { mqtt: { url: broker.url, username: 'relaybox', password: 'hunter2-do-not-log' } });
    const killed = await spawnRelay(raw, dir);
    await watcher.waitFor((w) => w.last(`${P}/availability`)?.text === 'online', 10_000, 'online');
    killed.child.kill('SIGKILL');
    await killed.exited;
    const will = await watcher.waitFor((w) => w.last(`${P}/availability`)?.text === 'offline' && w.last(`${P}/availability`), 10_000, 'the will');
    expect(will).toBeTruthy();

    const stopped = await spawnRelay(raw, dir);
    await watcher.waitFor((w) => w.last(`${P}/availability`)?.text === 'online', 10_000, 'online again');
    stopped.child.kill('SIGTERM');
    expect(await stopped.exited).toBe(0);
    await watcher.waitFor((w) => w.last(`${P}/availability`)?.text === 'offline', 5000, 'offline on SIGTERM');
    const retained = await Watcher.connect(broker.url, [`${P}/availability`]);
    await retained.waitFor((w) => w.last(`${P}/availability`)?.retain && w.last(`${P}/availability`)?.text === 'offline', 5000, 'retained offline');
    for (const lines of [killed.lines, stopped.lines]) expect(lines.join('\n')).not.toContain('hunter2');
  });

  it('clears the discovery config of an upstream removed from the configuration', async () => {
    const broker = await Mosquitto.start();
    const dir = tempDir();
    const outbox = (name: string) => ({ name, type: 'file', dir: `${dir}/${name}` });
    const first = await startRelay(relayConfig(dir, { upstreams: [outbox('a'), outbox('b')], mqtt: { url: broker.url } }));
    const watcher = await Watcher.connect(broker.url, ['homeassistant/binary_sensor/#']);
    await watcher.waitFor((w) => w.seen.length >= 2, 10_000, 'two upstream configs');
    await first.app.stop();

    await startRelay(relayConfig(dir, { upstreams: [outbox('a')], mqtt: { url: broker.url } }));
    const removed = 'homeassistant/binary_sensor/relaybox_test_example/upstream_b/config';
    await watcher.waitFor((w) => w.last(removed)?.text === '', 10_000, 'an empty retained config for b');
    const fresh = await Watcher.connect(broker.url, ['homeassistant/binary_sensor/#']);
    await fresh.waitFor((w) => w.seen.length >= 1, 5000, 'retained configs');
    await new Promise((r) => setTimeout(r, 300));
    expect(fresh.seen.map((s) => s.topic)).toEqual(['homeassistant/binary_sensor/relaybox_test_example/upstream_a/config']);
  });
});
