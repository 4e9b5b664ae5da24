import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { relayConfig, sendMail, spawnRelay, waitFor } from './helpers/relay.js';
import { freePort, Mosquitto, Watcher } from './helpers/mosquitto.js';
import { tempDir } from './helpers/tmp.js';

/**
 * relaybox inside the socket sandbox of its systemd unit. The unit's RestrictAddressFamilies= is
 * a seccomp filter that makes socket(2) fail for every other family; test/sandbox/families.c sets
 * the same filter here, so a call that needs another family (reading the machine's addresses goes
 * through netlink) shows up in `make test`, not first on a Pi. Once it did not: the service
 * answered one SMTP greeting on the card image and then crashed.
 */
const HAS_GCC = spawnSync('sh', ['-c', 'command -v gcc']).status === 0;
const FAMILY: Record<string, number> = { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10, AF_NETLINK: 16 };
const unitFamilies = /^RestrictAddressFamilies=(.*)$/m.exec(readFileSync(join(import.meta.dirname, '../systemd/relaybox.service'), 'utf8'))![1]!.trim().split(/\s+/);

function buildShim(dir: string): string {
  const out = join(dir, 'families');
  const gcc = spawnSync('gcc', ['-O2', '-Wall', '-o', out, join(import.meta.dirname, 'sandbox/families.c')], { encoding: 'utf8' });
  if (gcc.status !== 0) throw new Error(`gcc failed:\n${gcc.stderr}`);
  return out;
}

describe.skipIf(!HAS_GCC)('relaybox in the unit\'s socket sandbox', () => {
  it('knows every family the unit names', () => {
    for (const name of unitFamilies) expect(FAMILY, name).toHaveProperty(name);
  });

  it.each([
    ['the unit\'s own families', unitFamilies],
    ['a stricter drop-in without netlink', unitFamilies.filter((f) => f !== 'AF_NETLINK')],
  ])('with %s: starts, logs its console URL, publishes discovery, takes and delivers mail, keeps running', async (_, families) => {
    const dir = tempDir();
    const shim = buildShim(dir);
    const broker = await Mosquitto.start();
    const watcher = await Watcher.connect(broker.url, ['homeassistant/+/+/state/config']);
    const httpPort = await freePort();
    const config = relayConfig(join(dir, 'data'), {
      http: { listen: `0.0.0.0:${httpPort}`, admin_token: 'sandbox-test-token' },
      mqtt: { url: broker.url },
    });
    const relay = await spawnRelay(config, dir, { wrap: [shim, families.map((f) => FAMILY[f]).join(',')] });
    const consoleLine = await waitFor(() => relay.lines.find((l) => l.includes(', console http://')), 15_000, 'the start line');
    expect(consoleLine).toContain(`:${httpPort}/`);
    const discovery = JSON.parse((await watcher.waitFor((w) => w.seen[0], 15_000, 'a discovery config')).text);
    // Only with netlink can it know a LAN address to link; without, the link is left out, not made up.
    if (!families.includes('AF_NETLINK')) expect(discovery.device).not.toHaveProperty('configuration_url');

    const { response } = await sendMail(relay.port, { to: ['office@example.com'], subject: 'sandboxed' });
    expect(response).toMatch(/^250 /);
    const outbox = join(dir, 'data', 'outbox');
    await waitFor(() => existsSync(outbox) && readdirSync(outbox).some((f) => f.endsWith('.eml')), 30_000, 'the message in the outbox');
    const res = await fetch(`http://127.0.0.1:${httpPort}/api/status`, { headers: { authorization: 'Bearer sandbox-test-token' } });
    expect(res.status).toBe(200);
    expect(relay.child.exitCode).toBeNull();
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
  }, 90_000);
});
