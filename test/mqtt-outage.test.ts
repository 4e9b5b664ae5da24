import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/load.js';
import { RelayEvents } from '../src/events.js';
import { openSpool } from '../src/spool/db.js';
import { SpoolStore } from '../src/spool/store.js';
import { MqttStatus } from '../src/status/mqtt.js';
import { BrokerConnection } from '../src/status/mqttClient.js';
import { StatusTracker } from '../src/health/tracker.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { Mosquitto, Watcher } from './helpers/mosquitto.js';
import { certificate, TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const P = 'relaybox/relaybox_test_example';

describe('MQTT broker outages', () => {
  it('keeps accepting and delivering while the broker is away, and republishes everything when it is back', async () => {
    const broker = await Mosquitto.start();
    const up = await TestUpstream.start();
    const { app, port } = await startRelay(
      relayConfig(tempDir(), { upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }], mqtt: { url: broker.url } }),
    );
    const watcher = await Watcher.connect(broker.url, ['relaybox/#', 'homeassistant/#']);
    await watcher.waitFor((w) => w.last(`${P}/availability`)?.text === 'online', 10_000, 'online');

    await broker.stop();
    for (let i = 0; i < 20; i++) await sendMail(port, { to: [`a${i}@example.com`], subject: `during the outage ${i}` });
    await up.waitForMessages(20);
    await waitFor(() => app.status.deliveredTotal === 20, 5000, 'all delivered');

    const back = Date.now();
    await broker.restart(); // without persistence: it has forgotten every retained message
    const status = await watcher.waitFor((w) => {
      const s = w.on(`${P}/status`).filter((m) => m.at >= back).at(-1);
      return s && JSON.parse(s.text);
    }, 15_000, 'the status republished');
    expect(status).toMatchObject({ delivered_total: 20, queue: { queued: 0, deferred: 0 } });
    await watcher.waitFor((w) => w.on(`${P}/availability`).some((m) => m.at >= back && m.text === 'online'), 5000, 'online again');
    await watcher.waitFor((w) => w.seen.some((m) => m.at >= back && m.topic.startsWith('homeassistant/sensor/')), 5000, 'discovery again');

    await sendMail(port, { to: ['after@example.com'] });
    await watcher.waitFor((w) => w.on(`${P}/events`).some((m) => m.at >= back && JSON.parse(m.text).event === 'delivered'), 5000, 'events again');
    expect(up.messages).toHaveLength(21);
  });

  it('keeps nothing queued for an absent broker: events are counted and dropped, not buffered', async () => {
    const broker = await Mosquitto.start();
    const dir = tempDir();
    const config = validateConfig(relayConfig(dir, { mqtt: { url: broker.url } }));
    const db = openSpool(dir);
    const events = new RelayEvents();
    const spool = new SpoolStore(db, events);
    const status = new StatusTracker({ events, db, upstreams: ['outbox'], version: 'test' });
    const logger = pino({ level: 'silent' });
    const connection = new BrokerConnection(config.mqtt!, { hostname: config.hostname, logger });
    const publisher = new MqttStatus(connection, { config, logger, events, spool, status });
    try {
      await connection.start();
      await publisher.start();
      await waitFor(() => connection.connected, 10_000, 'connected');
      await broker.stop();
      await waitFor(() => !connection.connected, 10_000, 'disconnected');

      const heapBefore = process.memoryUsage().heapUsed;
      for (let id = 1; id <= 200; id++) {
        events.emit('message', { id, event: 'accepted', upstream: null, reply: 'x'.repeat(2000), recipients: ['a@example.com'], at: new Date() });
      }
      const client = connection.mqttClient as any;
      expect(publisher.droppedEvents).toBe(200);
      expect(client.queue.length).toBe(0); // QoS 0 publishes would wait here with queueQoSZero
      expect(client.outgoingStore._inflights.size).toBe(0); // QoS 1 publishes would wait here
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(20 * 1024 * 1024);

      await broker.restart();
      await waitFor(() => connection.connected, 15_000, 'reconnected');
      const watcher = await Watcher.connect(broker.url, [`${P}/events`]);
      events.emit('message', { id: 201, event: 'delivered', upstream: 'outbox', reply: '250 ok', recipients: ['a@example.com'], at: new Date() });
      const seen = await watcher.waitFor((w) => w.seen[0], 5000, 'an event after the outage');
      expect(JSON.parse(seen.text)).toMatchObject({ id: 201, event: 'delivered' });
      expect(watcher.seen).toHaveLength(1); // none of the 200 was kept and sent late
    } finally {
      await publisher.stop();
      await connection.stop();
      db.close();
    }
  });

  it('connects over mqtts:// with a CA file, and refuses a broker certificate it cannot verify', async () => {
    const pems = await certificate();
    const broker = await Mosquitto.start({ tls: { cert: pems.cert, key: pems.key } });
    const dir = tempDir();
    const ca = join(dir, 'broker-ca.pem');
    writeFileSync(ca, pems.cert);
    const url = `mqtts://127.0.0.1:${broker.tlsPort}`;
    const watcher = await Watcher.connect(broker.url, ['relaybox/+/availability']);
    await startRelay(relayConfig(join(dir, 'a'), { mqtt: { url, node_id: 'with_ca', tls: { ca } } }));
    await startRelay(relayConfig(join(dir, 'b'), { mqtt: { url, node_id: 'without_ca' } }));
    await watcher.waitFor((w) => w.last('relaybox/with_ca/availability')?.text === 'online', 10_000, 'online over TLS');
    await new Promise((r) => setTimeout(r, 1500));
    expect(watcher.on('relaybox/without_ca/availability')).toEqual([]);
  });
});
