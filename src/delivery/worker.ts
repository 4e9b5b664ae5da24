/**
 * The delivery thread: scheduler, upstreams and a spool connection of its own, so that talking to
 * upstreams runs on the second core while the main thread takes mail in. It hears about new mail
 * from the main thread, tells it every state change, and says when it has had nothing to do for
 * a while (the main thread then stops it: idle, relaybox is one thread); see thread.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config/schema.js';
import { sizeLimits } from '../config/sizeLimits.js';
import { RelayEvents, type MessageEvent, type UpstreamEvent } from '../events.js';
import { createLogger } from '../logger.js';
import { openSpool } from '../spool/db.js';
import { SpoolStore, type ClaimedMessage } from '../spool/store.js';
import { createUpstreams } from '../upstreams/registry.js';
import type { Upstream } from '../upstreams/types.js';
import type { OpenBreaker } from './breaker.js';
import { Pacing } from './pacing.js';
import { DeliveryScheduler } from './scheduler.js';

export interface DeliveryWorkerInput {
  config: Config;
  logLevel: string;
  /** Idle this long (nothing sent, nothing due this soon), the thread offers to stop. */
  idleMs: number;
  /** Upstreams the previous delivery thread found down: still set aside (breaker.ts). */
  openBreakers?: OpenBreaker[];
}

/** Main thread → delivery thread. */
export type ToDelivery =
  | { type: 'queued'; messages: ClaimedMessage[] }
  | { type: 'due' }
  | { type: 'dropped'; id: number }
  /** A person signed in again for the upstream: its breaker closes (the due mail follows as `due`). */
  | { type: 'reconnected'; upstream: string }
  /** `idle`: the answer to an `idle` offer, refused (`busy`) if work came up meanwhile. */
  | { type: 'stop'; graceMs: number; idle?: boolean };

/** Delivery thread → main thread. */
export type FromDelivery =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'events'; events: Array<{ message: MessageEvent } | { upstream: UpstreamEvent }> }
  /** Nothing in flight, nothing due for `idleMs`; `seen` = messages from the main thread handled so far. */
  | { type: 'idle'; seen: number }
  /** An idle stop arrived after new work had started: the thread goes on. */
  | { type: 'busy' }
  /** At its end: the upstreams it found down, for the next thread. */
  | { type: 'breakers'; open: OpenBreaker[] };

const port = parentPort!;
const { config, logLevel, idleMs, openBreakers } = workerData as DeliveryWorkerInput;
const logger = createLogger(logLevel);
const post = (message: FromDelivery) => port.postMessage(message);

/** State changes go to the main thread once per turn of the loop, however many there were. */
let outbox: Array<{ message: MessageEvent } | { upstream: UpstreamEvent }> = [];
function forward(event: { message: MessageEvent } | { upstream: UpstreamEvent }): void {
  if (outbox.length === 0) setImmediate(() => {
    post({ type: 'events', events: outbox });
    outbox = [];
  });
  outbox.push(event);
}

let upstreams: Upstream[] = [];
try {
  const events = new RelayEvents();
  const db = openSpool(config.data_dir);
  const spool = new SpoolStore(db, events, { logger });
  upstreams = createUpstreams(config.upstreams, {
    hostname: config.hostname,
    concurrency: config.delivery.concurrency,
    timeouts: config.delivery.timeouts,
    logger,
    dataDir: config.data_dir,
  });
  const scheduler = new DeliveryScheduler({
    spool,
    upstreams,
    delivery: config.delivery,
    logger,
    events,
    hostname: config.hostname,
    rewrite: config.smtp.rewrite,
    routes: config.routes,
    dkim: config.dkim,
    dataDir: config.data_dir,
    openBreakers: openBreakers ?? [],
    sizeLimits: sizeLimits(config.upstreams),
    // Seeded from the delivery log at each thread start: an idle stop or a restart keeps the count.
    pacing: new Pacing({ upstreams: config.upstreams, db }),
  });
  events.on('message', (message) => forward({ message }));
  events.on('upstream', (upstream) => forward({ upstream }));
  let seen = 0;
  let busyAt = Date.now();
  events.on('message', () => (busyAt = Date.now()));
  const idleCheck = setInterval(() => {
    const now = Date.now();
    if (scheduler.busy || now - busyAt < idleMs) return;
    const next = spool.nextDueAt(); // read only once the cheap signs say idle
    if (next !== null && next - now < idleMs) return;
    post({ type: 'idle', seen });
  }, Math.max(50, idleMs / 6));
  idleCheck.unref();
  port.on('message', (message: ToDelivery) => {
    seen++;
    busyAt = Date.now();
    switch (message.type) {
      case 'queued':
        for (const m of message.messages) spool.offer(m);
        return scheduler.wake();
      case 'due':
        spool.dueNow();
        return scheduler.wake();
      case 'dropped':
        return spool.forget(message.id);
      case 'reconnected':
        return scheduler.reconnected(message.upstream);
      case 'stop':
        // A retry may have fallen due between the offer and this answer: finish it first.
        if (message.idle && scheduler.busy) return post({ type: 'busy' });
        clearInterval(idleCheck);
        return void stop(scheduler, spool, message.graceMs);
    }
  });
  scheduler.start();
  post({ type: 'ready' });
} catch (err) {
  for (const upstream of upstreams) void upstream.close();
  post({ type: 'failed', message: (err as Error)?.message ?? String(err) });
}

async function stop(scheduler: DeliveryScheduler, spool: SpoolStore, graceMs: number): Promise<void> {
  await scheduler.stop(graceMs);
  await Promise.allSettled(upstreams.map((u) => u.close()));
  post({ type: 'breakers', open: scheduler.openBreakers() });
  spool.close();
  if (outbox.length > 0) post({ type: 'events', events: outbox });
  outbox = [];
  logger.flush(() => port.close());
}
