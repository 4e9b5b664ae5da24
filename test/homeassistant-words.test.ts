import { createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { relayConfig, startRelay } from './helpers/relay.js';
import { Mosquitto, Watcher } from './helpers/mosquitto.js';
import { tempDir } from './helpers/tmp.js';

const DEVICE = 'homeassistant/+/relaybox_test_example/+/config';

/** A port nobody listens on now: the console's URL names the configured port, so it cannot be 0. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function fileUpstream(dir: string, name: string) {
  return { name, type: 'file', dir: `${dir}/${name}` };
}

async function discovery(brokerUrl: string, count: number): Promise<Record<string, any>> {
  const watcher = await Watcher.connect(brokerUrl, [DEVICE]);
  const configs = await watcher.waitFor((w) => w.seen.length >= count && w.seen, 10_000, `${count} discovery configs`);
  return Object.fromEntries(configs.map((c) => [c.topic.split('/')[3]!, JSON.parse(c.text)]));
}

describe('Home Assistant discovery, as a person reads it in HA', () => {
  it('names the state in words, links the console, and keeps upstreams named a.b and a_b apart', async () => {
    const broker = await Mosquitto.start();
    const dir = tempDir();
    const port = await freePort();
    const upstreams = ['primary', 'a.b', 'a_b', 'smtp.example.com'].map((name) => fileUpstream(dir, name));
    await startRelay(relayConfig(dir, { upstreams, mqtt: { url: broker.url }, http: { listen: `0.0.0.0:${port}`, admin_token: 'ha-words-token' } }));
    const byObject = await discovery(broker.url, 9 + upstreams.length);

    expect(byObject.state).toMatchObject({ name: 'State', device_class: 'enum', options: ['OK', 'Degraded', 'Down'] });
    expect(byObject.state.value_template).toContain('"degraded":"Degraded"');
    // No two entities read alike: what waits for a person now, and the counter since the start.
    expect(byObject.failed.name).toBe('Failed, waiting for a person');
    expect(byObject.failed_total.name).toBe('Failed recipients (total)');
    const names = Object.values(byObject).map((p) => p.name);
    expect(new Set(names).size).toBe(names.length);

    // A simple name keeps the id it always had; dotted names are escaped, never folded onto another.
    const ids = Object.values(byObject).map((p) => p.unique_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual(expect.arrayContaining([
      'relaybox_relaybox_test_example_upstream_primary',
      'relaybox_relaybox_test_example_upstream_a_b',
      'relaybox_relaybox_test_example_upstreamx_a_2eb',
      'relaybox_relaybox_test_example_upstreamx_smtp_2eexample_2ecom',
    ]));

    const lan = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    expect(byObject.state.device.configuration_url).toBe(lan ? `http://${lan}:${port}/` : undefined);
    for (const payload of Object.values(byObject)) expect(payload.device).toEqual(byObject.state.device);
  });

  it('gives no configuration_url when the console listens on loopback only', async () => {
    const broker = await Mosquitto.start();
    const dir = tempDir();
    await startRelay(relayConfig(dir, { mqtt: { url: broker.url } }));
    const byObject = await discovery(broker.url, 10);
    expect(byObject.state.device).not.toHaveProperty('configuration_url');
    expect(byObject.state.device).toMatchObject({ identifiers: ['relaybox_relaybox_test_example'] });
  });
});
