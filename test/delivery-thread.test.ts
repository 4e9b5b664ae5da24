import { pino } from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import { validateConfig } from '../src/config/load.js';
import { DeliveryThread } from '../src/delivery/thread.js';
import { RelayEvents, type MessageEvent } from '../src/events.js';
import { openSpool } from '../src/spool/db.js';
import { getMessage } from '../src/spool/log.js';
import { SpoolStore } from '../src/spool/store.js';
import { relayConfig, waitFor } from './helpers/relay.js';
import { TestUpstream, type Received } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

/**
 * The delivery thread as app.ts wires it, with a short idle time: a spool on this thread, the
 * delivery thread with its own connection, a real SMTP upstream on loopback.
 */
async function setup(idleMs = 300, retryFirst = '200ms') {
  const up = await TestUpstream.start();
  const dir = tempDir();
  const config = validateConfig(
    relayConfig(dir, {
      upstreams: [{ name: 'primary', type: 'smtp', host: '127.0.0.1', port: up.port, security: 'none' }],
      delivery: { retry: { first: retryFirst, max: '1s', give_up_after: '1h' }, shutdown_grace: '2s' },
    }),
  );
  const events = new RelayEvents();
  const seen: MessageEvent[] = [];
  events.on('message', (e) => seen.push(e));
  const crashes: Error[] = [];
  const spool: SpoolStore = new SpoolStore(openSpool(dir), events, { queued: (m) => thread.queue(m) });
  const thread = new DeliveryThread({ config, logger: pino({ level: 'silent' }), events, nextDueAt: () => spool.nextDueAt(), onCrash: (err) => crashes.push(err), idleMs });
  events.on('due', () => thread.due());
  events.on('message', (e) => e.event === 'dropped' && thread.dropped(e.id));
  await thread.start();
  onTestFinished(async () => {
    await thread.stop(1000);
    spool.close();
    expect(crashes).toEqual([]);
  });
  const accept = async (subject: string) => {
    const body = spool.receive();
    body.write(Buffer.from(`Subject: ${subject}\r\n\r\nhello\r\n`));
    return spool.accept(body, { mailFrom: 'ups@example.com', recipients: ['ops@example.com'] });
  };
  const stateOf = (id: number) => getMessage(spool.db, id)?.state;
  return { up, spool, thread, seen, accept, stateOf };
}

const subjectOf = (m: Received) => /^Subject: (.*)\r$/m.exec(m.raw!.toString())?.[1];

// A thread's first start under load can take seconds: windows are wide, the checks exact.
describe('the delivery thread', { timeout: 120_000 }, () => {
  it('starts with the first message, stops when idle, and starts again for the next one', async () => {
    const { up, thread, seen, accept } = await setup();
    expect(thread.running).toBe(false); // an empty spool: relaybox idles as one thread

    const first = await accept('first');
    await up.waitForMessages(1);
    await waitFor(() => seen.some((e) => e.id === first && e.event === 'delivered'), 30_000, 'first delivered (event on this thread)');
    expect(thread.running).toBe(true);
    await waitFor(() => !thread.running, 30_000, 'the idle thread to stop');

    const second = await accept('second');
    await up.waitForMessages(2);
    await waitFor(() => seen.some((e) => e.id === second && e.event === 'delivered'), 30_000, 'second delivered');
    expect(up.messages.map(subjectOf)).toEqual(['first', 'second']);
  });

  it('starts as soon as a device begins sending, and stops again if no message comes', async () => {
    const { up, thread, seen, accept } = await setup();
    thread.expectMail();
    await waitFor(() => thread.running, 30_000, 'the thread to start before any message is committed');
    const id = await accept('while it was starting');
    await waitFor(() => seen.some((e) => e.id === id && e.event === 'delivered'), 30_000, 'delivered');
    await waitFor(() => !thread.running, 30_000, 'the idle thread to stop');

    thread.expectMail(); // a device that began a transaction and then gave up
    await waitFor(() => thread.running, 30_000, 'the thread to start');
    await waitFor(() => !thread.running, 30_000, 'the unused thread to stop');
    expect(up.messages.map(subjectOf)).toEqual(['while it was starting']);
  });

  it('retries a deferred message when it falls due, even after the thread stopped meanwhile', async () => {
    const { up, thread, seen, accept, stateOf } = await setup(200, '1500ms');
    up.failData(451, '4.3.0 Try again later', 1);
    const id = await accept('deferred once');
    await waitFor(() => stateOf(id) === 'deferred', 30_000, 'deferred');
    await waitFor(() => !thread.running, 30_000, 'the thread to stop while the retry waits');
    await waitFor(() => stateOf(id) === 'delivered', 30_000, 'delivered on the retry');
    // The row is committed on the delivery thread before its event crosses to this one.
    await waitFor(() => seen.some((e) => e.id === id && e.event === 'delivered'), 30_000, 'the delivered event');
    expect(up.messages).toHaveLength(1);
    expect(seen.filter((e) => e.id === id).map((e) => e.event)).toEqual(['accepted', 'deferred', 'delivered']);
  });

  it("starts for a person's retry of a failed message", async () => {
    const { up, spool, thread, accept, stateOf } = await setup();
    up.failData(550, '5.7.1 Not today', 1);
    const id = await accept('failed first');
    await waitFor(() => stateOf(id) === 'failed', 30_000, 'failed');
    await waitFor(() => !thread.running, 30_000, 'the idle thread to stop');
    expect(spool.retry(id)).toBe(true);
    await waitFor(() => stateOf(id) === 'delivered', 30_000, 'delivered after the retry');
    expect(up.messages).toHaveLength(1);
  });

  it('does not deliver a message dropped before the thread took it', async () => {
    const { up, spool, accept, stateOf } = await setup();
    const id = await accept('dropped at once');
    expect(spool.drop(id)).toBe(true); // in the same turn: still waiting to be handed over
    const later = await accept('kept');
    await waitFor(() => stateOf(later) === 'delivered', 30_000, 'the next message delivered');
    expect(stateOf(id)).toBe('dropped');
    expect(up.messages.map(subjectOf)).toEqual(['kept']);
  });
});
