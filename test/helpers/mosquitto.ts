import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { onTestFinished } from 'vitest';

export const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'].find((p) => existsSync(p)) ?? 'mosquitto';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * A private Mosquitto on a free loopback port (never the machine's own on 1883), anonymous, no
 * persistence: a restart forgets sessions and retained messages, like a broker box rebooting.
 * `stop` and `restart` make an outage on the same port. Killed after the test.
 */
export class Mosquitto {
  private child: ChildProcess | undefined;
  private readonly dir: string;
  readonly output: string[] = [];

  private constructor(
    readonly port: number,
    readonly tlsPort: number | undefined,
    tls: { cert: string; key: string } | undefined,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'relaybox-mosquitto-'));
    // Started as root, mosquitto reads its certificates after dropping to the `mosquitto` user.
    chmodSync(this.dir, 0o755);
    const lines = ['per_listener_settings false', 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error', 'log_type warning'];
    lines.push(`listener ${port} 127.0.0.1`);
    if (tls && tlsPort) {
      writeFileSync(join(this.dir, 'cert.pem'), tls.cert, { mode: 0o644 });
      writeFileSync(join(this.dir, 'key.pem'), tls.key, { mode: 0o644 }); // a throwaway test key
      lines.push(`listener ${tlsPort} 127.0.0.1`, `certfile ${join(this.dir, 'cert.pem')}`, `keyfile ${join(this.dir, 'key.pem')}`);
    }
    writeFileSync(join(this.dir, 'mosquitto.conf'), `${lines.join('\n')}\n`);
  }

  static async start(options: { tls?: { cert: string; key: string } } = {}): Promise<Mosquitto> {
    const broker = new Mosquitto(await freePort(), options.tls ? await freePort() : undefined, options.tls);
    onTestFinished(async () => {
      await broker.stop();
      rmSync(broker.dir, { recursive: true, force: true });
    });
    await broker.restart();
    return broker;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Starts (again) on the same port; resolves once it accepts connections. */
  async restart(): Promise<void> {
    if (this.child) return;
    const child = spawn(MOSQUITTO, ['-c', join(this.dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => this.output.push(d.toString()));
    this.child = child;
    const end = Date.now() + 10_000;
    while (!(await accepts(this.port)) || (this.tlsPort && !(await accepts(this.tlsPort)))) {
      if (child.exitCode !== null || Date.now() > end) throw new Error(`mosquitto did not start: ${this.output.join('')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** An outage: the broker dies (SIGKILL) and everything it held is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
}

export interface Seen {
  topic: string;
  text: string;
  retain: boolean;
  at: number;
}

/** A subscriber that records everything on `filters`, retained messages included. */
export class Watcher {
  readonly seen: Seen[] = [];
  private constructor(readonly client: MqttClient) {}

  static async connect(url: string, filters: string[]): Promise<Watcher> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, connectTimeout: 5000 });
    const watcher = new Watcher(client);
    client.on('message', (topic, payload, packet) => watcher.seen.push({ topic, text: payload.toString(), retain: packet.retain, at: Date.now() }));
    client.on('error', () => undefined);
    await client.subscribeAsync(filters, { qos: 1 });
    // Subscribed again after the broker came back (it forgot the subscription).
    client.on('connect', () => void client.subscribeAsync(filters, { qos: 1 }).catch(() => undefined));
    onTestFinished(() => client.endAsync(true));
    return watcher;
  }

  on(topic: string): Seen[] {
    return this.seen.filter((s) => s.topic === topic);
  }

  last(topic: string): Seen | undefined {
    return this.on(topic).at(-1);
  }

  async waitFor<T>(probe: (w: Watcher) => T | undefined | null | false, timeoutMs = 10_000, what = 'an MQTT message'): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const value = probe(this);
      if (value) return value;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; seen:\n${this.seen.map((s) => `${s.topic} ${s.text.slice(0, 200)}`).join('\n')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/** Publishes and waits for the broker's acknowledgement. */
export async function publish(url: string, topic: string, payload: string, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  try {
    await client.publishAsync(topic, payload, { qos: options.qos ?? 1, retain: options.retain ?? false });
  } finally {
    await client.endAsync();
  }
}
