import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { RelayEvents } from '../events.js';
import type { ClaimedMessage } from '../spool/store.js';
import type { DeliveryWorkerInput, FromDelivery, ToDelivery } from './worker.js';

const STOP_MARGIN_MS = 5_000;

export interface DeliveryThreadOptions {
  config: Config;
  logger: Logger;
  /** The main thread's bus: the delivery thread's state changes are emitted here. */
  events: RelayEvents;
  /** The delivery thread died: nothing would be delivered any more. */
  onCrash: (err: Error) => void;
}

/**
 * The main thread's handle on delivery (worker.ts), which runs in a thread of its own so that a
 * Pi's second core relays while the first takes mail in. Tells it what was queued, retried or
 * dropped here; re-emits its state changes on the main thread's bus.
 */
export class DeliveryThread {
  private queued: ClaimedMessage[] = [];
  private stopping = false;

  private constructor(
    private readonly worker: Worker,
    private readonly options: DeliveryThreadOptions,
  ) {
    worker.on('message', (message: FromDelivery) => {
      if (message.type !== 'events') return;
      for (const e of message.events) {
        if ('message' in e) options.events.emit('message', e.message);
        else options.events.emit('upstream', e.upstream);
      }
    });
    worker.on('error', (err) => this.crashed(err));
    worker.on('exit', (code) => this.crashed(new Error(`delivery thread exited with code ${code}`)));
  }

  /** Resolves once upstreams are set up and the scheduler runs; rejects with what stopped it. */
  static start(options: DeliveryThreadOptions): Promise<DeliveryThread> {
    const input: DeliveryWorkerInput = { config: options.config, logLevel: options.logger.level };
    const worker = startWorker(input);
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        void worker.terminate();
        reject(err);
      };
      worker.once('error', fail);
      worker.once('message', (message: FromDelivery) => {
        worker.off('error', fail);
        if (message.type === 'ready') resolve(new DeliveryThread(worker, options));
        else fail(new Error(message.type === 'failed' ? message.message : `delivery thread said ${message.type} at start`));
      });
    });
  }

  /** Committed as queued on the main thread: due now. Sent once per turn of the loop. */
  queue(message: ClaimedMessage): void {
    if (this.queued.length === 0) setImmediate(() => this.flushQueued());
    this.queued.push(message);
  }

  /** Something became due that the delivery thread cannot know of (a person's retry). */
  due(): void {
    this.send({ type: 'due' });
  }

  dropped(id: number): void {
    this.send({ type: 'dropped', id });
  }

  /** Lets deliveries in flight finish (up to `graceMs`), closes upstreams and its spool connection. */
  async stop(graceMs: number): Promise<void> {
    if (this.stopping) return;
    this.flushQueued();
    this.stopping = true;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ type: 'stop', graceMs } satisfies ToDelivery);
    const timer = setTimeout(() => void this.worker.terminate(), graceMs + STOP_MARGIN_MS);
    await exited;
    clearTimeout(timer);
  }

  private flushQueued(): void {
    if (this.queued.length === 0) return;
    this.send({ type: 'queued', messages: this.queued });
    this.queued = [];
  }

  private send(message: ToDelivery): void {
    if (!this.stopping) this.worker.postMessage(message);
  }

  private crashed(err: Error): void {
    if (this.stopping) return;
    this.stopping = true;
    this.options.onCrash(err);
  }
}

/** worker.js next to this file; from the TypeScript sources (tests), worker.ts through tsx. */
function startWorker(input: DeliveryWorkerInput): Worker {
  const url = new URL(`./worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData: input });
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(bootstrap, { eval: true, workerData: input });
}
