import { createServer, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError } from '../src/config/errors.js';
import { validateConfig } from '../src/config/load.js';
import { DeliveryScheduler } from '../src/delivery/scheduler.js';
import { DeliveryThread } from '../src/delivery/thread.js';
import { RelayEvents, type MessageEvent } from '../src/events.js';
import { openSpool } from '../src/spool/db.js';
import { getMessage } from '../src/spool/log.js';
import { SpoolStore } from '../src/spool/store.js';
import { StatusTracker } from '../src/health/tracker.js';
import { createUpstreams } from '../src/upstreams/registry.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

/** An upstream that takes the TCP connection and never says a word (a hung MTA, a wrong port). */
class SilentServer {
  connections = 0;
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  /** `dropFrom`: connections after the first `dropFrom` ones are closed at once instead. */
  static async start(port = 0, options: { dropFrom?: number } = {}): Promise<SilentServer> {
    let silent: SilentServer;
    const server = createServer((socket) => {
      silent.connections += 1;
      if (options.dropFrom !== undefined && silent.connections > options.dropFrom) return void socket.destroy();
      silent.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('close', () => silent.sockets.delete(socket));
    });
    silent = new SilentServer(server);
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    onTestFinished(() => silent.close());
    return silent;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Greetings time out after 1 s; retries (and so probes, see breakerBackoff) wait 30 s and more. */
const SLOW_RETRIES = { timeouts: { greeting: '1s' }, retry: { first: '1m' } };
const smtp = (name: string, port: number) => ({ name, type: 'smtp', host: '127.0.0.1', port, security: 'none' });
/** What `queue show` lists for a message: its attempts, by upstream. */
const attempts = (db: Parameters<typeof getMessage>[0], id: number) =>
  getMessage(db, id)!.history.filter((h) => h.event !== 'accepted').map((h) => `${h.event} ${h.upstream ?? ''}`.trim());

describe('circuit breaker per upstream', () => {
  it('sets a silent primary aside after one greeting timeout: later mail goes straight to the secondary', async () => {
    const silent = await SilentServer.start();
    const backup = await TestUpstream.start();
    const { app, port } = await startRelay(
      relayConfig(tempDir(), { upstreams: [smtp('primary', silent.port), smtp('backup', backup.port)], delivery: SLOW_RETRIES }),
    );
    const delivered: MessageEvent[] = [];
    app.events.on('message', (e) => e.event === 'delivered' && delivered.push(e));

    await sendMail(port, { to: ['a@example.com'], subject: 'first' });
    await waitFor(() => delivered.length === 1, 20_000, 'the first message delivered');
    const first = delivered[0]!.id;
    expect(attempts(app.spool.db, first)).toEqual(['deferred primary', 'delivered backup']);
    expect(getMessage(app.spool.db, first)!.history.find((h) => h.upstream === 'primary')!.reply).toMatch(/Greeting never received/);
    const primary = app.status.snapshot().upstreams.primary!;
    expect(primary).toMatchObject({ state: 'down', last_error: expect.stringMatching(/Greeting never received/) });
    expect(Date.parse(primary.next_probe_at!)).toBeGreaterThan(Date.parse(primary.last_error_at!));
    const connectionsAfterTrip = silent.connections;

    for (const subject of ['second', 'third', 'fourth']) await sendMail(port, { to: ['a@example.com'], subject });
    await waitFor(() => delivered.length === 4, 20_000, 'three more delivered');
    for (const e of delivered.slice(1)) expect(attempts(app.spool.db, e.id)).toEqual(['delivered backup']);
    expect(silent.connections).toBe(connectionsAfterTrip); // not asked again until the probe is due
    expect(app.status.snapshot().upstreams.primary!.state).toBe('down');
    const metrics = await (await fetch(`http://127.0.0.1:${app.httpAddress!.port}/metrics`)).text();
    expect(metrics).toMatch(/relaybox_upstream_next_probe_timestamp_seconds\{upstream="primary"\} \d+/);
    expect(metrics).toMatch(/relaybox_upstream_up\{upstream="primary"\} 0/);
  });

  it('defers mail whose every upstream is down until the next probe, without trying it', async () => {
    const silent = await SilentServer.start();
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtp('primary', silent.port)], delivery: SLOW_RETRIES }));
    const deferred: MessageEvent[] = [];
    app.events.on('message', (e) => e.event === 'deferred' && deferred.push(e));
    await sendMail(port, { to: ['a@example.com'], subject: 'trips it' });
    await waitFor(() => deferred.length === 1, 20_000, 'the first deferral');
    const connections = silent.connections;

    await sendMail(port, { to: ['b@example.com'], subject: 'waits' });
    await waitFor(() => deferred.length === 2, 20_000, 'the second deferral');
    const waiting = getMessage(app.spool.db, deferred[1]!.id)!;
    const nextProbe = app.status.snapshot().upstreams.primary!.next_probe_at!;
    expect(waiting.lastReply).toMatch(/^primary is down until .*: Greeting never received/);
    expect(waiting.nextAttemptAt).toBe(Date.parse(nextProbe));
    expect(silent.connections).toBe(connections);
  });

  it('gives up deliveries still waiting on the hung upstream as soon as another one finds it down', async () => {
    // The first connection hangs, later ones are closed at once: the second message trips the
    // breaker while the first still waits for a greeting due in 10 minutes.
    const silent = await SilentServer.start(0, { dropFrom: 1 });
    const backup = await TestUpstream.start();
    const { app, port } = await startRelay(
      relayConfig(tempDir(), { upstreams: [smtp('primary', silent.port), smtp('backup', backup.port)], delivery: { ...SLOW_RETRIES, timeouts: { greeting: '10m' } } }),
    );
    const delivered: MessageEvent[] = [];
    app.events.on('message', (e) => e.event === 'delivered' && delivered.push(e));
    await sendMail(port, { to: ['a@example.com'], subject: 'hangs' });
    await waitFor(() => silent.connections === 1, 10_000, 'the first connection');
    await sendMail(port, { to: ['b@example.com'], subject: 'trips' });
    await waitFor(() => delivered.length === 2, 60_000, 'both delivered through the backup');
    expect(backup.messages.map((m) => /^Subject: (.*)\r$/m.exec(m.raw!.toString())?.[1]).sort()).toEqual(['hangs', 'trips']);
    const hung = delivered.find((e) => getMessage(app.spool.db, e.id)!.history.some((h) => /given up|is down/.test(h.reply ?? '')))!;
    expect(attempts(app.spool.db, hung.id)).toEqual(['deferred primary', 'delivered backup']);
   }, 90_000);

  it('lets one probe through once the backoff has passed; its success sends mail to the primary again', async () => {
    const primary = await TestUpstream.start();
    const primaryPort = primary.port;
    await primary.stop();
    const silent = await SilentServer.start(primaryPort);
    const backup = await TestUpstream.start();
    const dir = tempDir();
    const config = validateConfig(relayConfig(dir, { upstreams: [smtp('primary', primaryPort), smtp('backup', backup.port)], delivery: SLOW_RETRIES }));
    const events = new RelayEvents();
    const spool = new SpoolStore(openSpool(dir), events);
    const logger = pino({ level: 'silent' });
    const upstreams = createUpstreams(config.upstreams, { hostname: config.hostname, concurrency: 4, timeouts: config.delivery.timeouts, logger });
    const status = new StatusTracker({ events, db: spool.db, upstreams: ['primary', 'backup'], version: 'test' });
    const scheduler = new DeliveryScheduler({ spool, upstreams, delivery: config.delivery, logger, events, breakerBackoff: { firstMs: 500, maxMs: 2000 } });
    scheduler.start();
    onTestFinished(async () => {
      await scheduler.stop(1000);
      await Promise.allSettled(upstreams.map((u) => u.close()));
      spool.close();
    });
    const delivered: MessageEvent[] = [];
    events.on('message', (e) => e.event === 'delivered' && delivered.push(e));
    const send = async (subject: string) => {
      const body = spool.receive();
      body.write(Buffer.from(`Subject: ${subject}\r\n\r\nhello\r\n`));
      await spool.accept(body, { mailFrom: 'scanner@example.com', recipients: ['ops@example.com'], subject });
      scheduler.wake();
      await waitFor(() => delivered.some((e) => getMessage(spool.db, e.id)!.subject === subject), 20_000, `${subject} delivered`);
      return delivered.find((e) => getMessage(spool.db, e.id)!.subject === subject)!;
    };

    expect((await send('while hung')).upstream).toBe('backup');
    expect(status.upstream('primary')).toMatchObject({ state: 'down', next_probe_at: expect.any(String) });

    await silent.close();
    await primary.restart(); // healed, same address
    const probeDue = Date.parse(status.upstream('primary')!.next_probe_at!);
    await waitFor(() => Date.now() > probeDue, 10_000, 'the probe to be due');
    expect((await send('the probe')).upstream).toBe('primary');
    expect(status.upstream('primary')).toMatchObject({ state: 'ok', next_probe_at: null });
    expect((await send('after')).upstream).toBe('primary');
    expect(primary.messages).toHaveLength(2);
  });

  it('remembers a down upstream when the idle delivery thread stops and starts again', async () => {
    const silent = await SilentServer.start();
    const backup = await TestUpstream.start();
    const dir = tempDir();
    const config = validateConfig(relayConfig(dir, { upstreams: [smtp('primary', silent.port), smtp('backup', backup.port)], delivery: SLOW_RETRIES }));
    const events = new RelayEvents();
    const spool: SpoolStore = new SpoolStore(openSpool(dir), events, { queued: (m) => thread.queue(m) });
    const thread = new DeliveryThread({ config, logger: pino({ level: 'silent' }), events, nextDueAt: () => spool.nextDueAt(), onCrash: () => undefined, idleMs: 300 });
    await thread.start();
    onTestFinished(async () => {
      await thread.stop(1000);
      spool.close();
    });
    const accept = async (subject: string) => {
      const body = spool.receive();
      body.write(Buffer.from(`Subject: ${subject}\r\n\r\nhello\r\n`));
      return spool.accept(body, { mailFrom: 'scanner@example.com', recipients: ['ops@example.com'] });
    };
    await accept('trips it');
    await backup.waitForMessages(1, 20_000);
    const connections = silent.connections;
    await waitFor(() => !thread.running, 10_000, 'the idle thread to stop');

    const id = await accept('after the restart');
    await backup.waitForMessages(2, 20_000);
    await waitFor(() => getMessage(spool.db, id)!.state === 'delivered', 10_000, 'delivered');
    expect(attempts(spool.db, id)).toEqual(['delivered backup']);
    expect(silent.connections).toBe(connections);
  });

  it('gives up on an upstream that greets but never answers EHLO, as a failure before MAIL FROM', async () => {
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.write('220 mute.example.com ESMTP\r\n'); // and then nothing, whatever it is asked
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve()) && sockets.forEach((s) => s.destroy())));
    const [upstream] = createUpstreams([validateConfig(relayConfig(tempDir(), { upstreams: [smtp('mute', (server.address() as { port: number }).port)] })).upstreams[0]!], {
      hostname: 'relaybox.test.example',
      concurrency: 1,
      timeouts: { connect: 500, greeting: 500 },
      logger: pino({ level: 'silent' }),
    });
    onTestFinished(() => upstream!.close());
    const failure = await upstream!.send({ from: 'a@example.com', to: ['b@example.com'] }, () => Readable.from(['Subject: x\r\n\r\nhi\r\n'])).catch((err: unknown) => err);
    expect(failure).toMatchObject({ phase: 'ehlo', code: null, reply: expect.stringMatching(/^no answer to EHLO, STARTTLS or AUTH: the session was not ready after 1500ms/) });
  });

  it('names the key of a bad timeout', () => {
    const problems = (timeouts: Record<string, string>) => {
      try {
        validateConfig(relayConfig(tempDir(), { delivery: { timeouts } }));
        return [];
      } catch (err) {
        return (err as ConfigError).problems;
      }
    };
    expect(problems({ greeting: '0s' })).toEqual(['delivery.timeouts.greeting: expected a duration from 100ms to 10m, got 0ms']);
    expect(problems({ connect: 'soon' })).toEqual(['delivery.timeouts.connect: expected a duration like 30s, 10m, 48h or 7d, got "soon"']);
    expect(problems({ ehlo: '5s' })).toEqual(['delivery.timeouts.ehlo: unknown key']);
    expect(validateConfig(relayConfig(tempDir())).delivery.timeouts).toEqual({ connect: 10_000, greeting: 30_000 });
  });
});
