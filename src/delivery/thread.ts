import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { RelayEvents } from '../events.js';
import { RESCAN_MS } from '../spool/dueQueue.js';
import type { ClaimedMessage } from '../spool/store.js';
import { startThread } from '../threads.js';
import type { OpenBreaker } from './breaker.js';
import type { DeliveryWorkerInput, FromDelivery, ToDelivery } from './worker.js';

const STOP_MARGIN_MS = 5_000;

export interface DeliveryThreadOptions {
  config: Config;
  logger: Logger;
  /** The main thread's bus: the delivery thread's state changes are emitted here. */
  events: RelayEvents;
  /** When the next message not being delivered falls due (the main thread's spool), or null. */
  nextDueAt: () => number | null;
  /** The delivery thread died: nothing would be delivered any more. */
  onCrash: (err: Error) => void;
  /** Idle this long, the thread stops (default 30 s). */
  idleMs?: number;
}

/**
 * The main thread's handle on delivery (worker.ts), which runs in a thread of its own so that a
 * Pi's second core relays while the first takes mail in. It starts when there is mail to deliver
 * and stops after a while with nothing to do, so that an idle relaybox is one thread's memory.
 * Tells it what was queued, retried or dropped here; re-emits its state changes on the main
 * thread's bus.
 */
export class DeliveryThread {
  private worker: Worker | null = null;
  private starting: Promise<void> | null = null;
  /** Committed as queued while no thread ran, or since the last turn of the loop. */
  private queued: ClaimedMessage[] = [];
  private dueWaiting = false;
  /** Messages posted to the current thread; it reports how many it has handled when idle. */
  private posted = 0;
  private idleStop: Promise<void> | null = null;
  private lookTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Upstreams the last thread found down: an idle stop must not make relaybox forget them. */
  private openBreakers: OpenBreaker[] = [];
  /** Reconnected while a thread was stopping: its list of open breakers is out of date for these. */
  private reconnectedWhileStopping = new Set<string>();

  constructor(private readonly options: DeliveryThreadOptions) {}

  /** Starts the thread if the spool holds mail due soon; otherwise it starts with the first message. */
  async start(): Promise<void> {
    const next = this.options.nextDueAt();
    if (next === null || next > Date.now()) return void this.look();
    this.worker = await this.spawn(); // a thread that cannot start fails the start
    this.posted = 0;
  }

  get running(): boolean {
    return this.worker !== null;
  }

  /** Committed as queued on the main thread: due now. Sent once per turn of the loop. */
  queue(message: ClaimedMessage): void {
    if (this.queued.length === 0) setImmediate(() => this.flush());
    this.queued.push(message);
  }

  /**
   * A device has begun sending. Starting a thread takes a while (~0.1 s here, more on a Pi), and
   * sending a scan takes longer still, so the thread is ready when the message is committed.
   * Unused, it stops again after the idle time.
   */
  expectMail(): void {
    this.launch(); // nothing when a thread runs, starts or is stopping
  }

  /** Something became due that the delivery thread cannot know of (a person's retry). */
  due(): void {
    this.dueWaiting = true;
    this.flush();
  }

  /** A person signed in again for `upstream` (the console): no thread, now or next, sets it aside. */
  reconnected(upstream: string): void {
    this.openBreakers = this.openBreakers.filter((b) => b.upstream !== upstream);
    if (this.idleStop) this.reconnectedWhileStopping.add(upstream);
    else if (this.worker) this.post({ type: 'reconnected', upstream });
  }

  dropped(id: number): void {
    this.queued = this.queued.filter((m) => m.id !== id);
    if (this.worker && !this.idleStop) this.post({ type: 'dropped', id });
  }

  /** Lets deliveries in flight finish (up to `graceMs`), closes upstreams and its spool connection. */
  async stop(graceMs: number): Promise<void> {
    this.closed = true;
    clearTimeout(this.lookTimer);
    await this.starting?.catch(() => {});
    await this.idleStop;
    if (this.worker) await this.requestStop(graceMs, false);
  }

  private flush(): void {
    if (this.closed || (this.queued.length === 0 && !this.dueWaiting)) return;
    if (!this.worker || this.idleStop) return void this.launch();
    if (this.queued.length > 0) this.post({ type: 'queued', messages: this.queued });
    if (this.dueWaiting) this.post({ type: 'due' });
    this.queued = [];
    this.dueWaiting = false;
  }

  /** Starts a thread unless one runs or is on its way; what waits is handed over once it is ready. */
  private launch(): void {
    if (this.starting || this.idleStop || this.worker || this.closed) return;
    clearTimeout(this.lookTimer);
    this.starting = this.spawn().then(
      (worker) => {
        this.worker = worker;
        this.posted = 0;
        this.starting = null;
        this.flush();
      },
      (err: Error) => {
        this.starting = null;
        throw err;
      },
    );
    // A thread that cannot start (a CA file gone since the config was checked) is a crash.
    this.starting.catch((err: Error) => this.crashed(err));
  }

  private spawn(): Promise<Worker> {
    const { config, logger, idleMs = 30_000 } = this.options;
    const worker = startThread(import.meta.url, 'worker', { config, logLevel: logger.level, idleMs, openBreakers: this.openBreakers } satisfies DeliveryWorkerInput);
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        void worker.terminate();
        reject(err);
      };
      worker.once('error', fail);
      worker.once('message', (message: FromDelivery) => {
        worker.off('error', fail);
        if (message.type !== 'ready') return fail(new Error(message.type === 'failed' ? message.message : `delivery thread said ${message.type} at start`));
        worker.on('message', (m: FromDelivery) => this.heard(m));
        worker.on('error', (err) => this.crashed(err));
        worker.on('exit', (code) => {
          if (this.worker === worker && !this.closed && !this.idleStop) this.crashed(new Error(`delivery thread exited with code ${code}`));
        });
        resolve(worker);
      });
    });
  }

  private heard(message: FromDelivery): void {
    if (message.type === 'breakers') {
      this.openBreakers = message.open.filter((b) => !this.reconnectedWhileStopping.has(b.upstream));
      this.reconnectedWhileStopping.clear();
    }
    else if (message.type === 'events') {
      for (const e of message.events) {
        if ('message' in e) this.options.events.emit('message', e.message);
        else this.options.events.emit('upstream', e.upstream);
      }
    } else if (message.type === 'idle' && message.seen === this.posted && !this.closed && !this.idleStop) {
      // It has handled everything sent to it and has nothing to do: let it go.
      this.idleStop = this.requestStop(0, true).then((how) => {
        this.idleStop = null;
        if (how === 'busy') {
          // The thread stays: it must hear of what was reconnected while it offered to stop.
          for (const upstream of this.reconnectedWhileStopping) this.post({ type: 'reconnected', upstream });
          this.reconnectedWhileStopping.clear();
          this.flush();
        }
        else void this.look();
      });
    }
  }

  /** While no thread runs: start one when the spool has mail due, else look again later. */
  private async look(): Promise<void> {
    if (this.closed || this.worker || this.starting) return;
    if (this.queued.length > 0 || this.dueWaiting) return this.launch();
    let next: number | null = null;
    try {
      next = this.options.nextDueAt();
    } catch (err) {
      this.options.logger.error({ err }, 'cannot read the spool; looking again shortly');
    }
    if (next !== null && next <= Date.now()) return this.launch();
    // As often as a running thread rescans: for retries falling due and the CLI's changes.
    const wait = next === null ? RESCAN_MS : Math.min(RESCAN_MS, next - Date.now());
    this.lookTimer = setTimeout(() => void this.look(), wait);
    this.lookTimer.unref();
  }

  /**
   * Asks the thread to stop, ending it by force `graceMs` + a margin later. An idle stop may be
   * refused (`busy`: work came up meanwhile) and the thread then stays.
   */
  private requestStop(graceMs: number, idle: boolean): Promise<'exited' | 'busy'> {
    const worker = this.worker!;
    return new Promise((resolve) => {
      const timer = setTimeout(() => void worker.terminate(), graceMs + STOP_MARGIN_MS);
      const finish = (how: 'exited' | 'busy') => {
        clearTimeout(timer);
        worker.off('message', busy);
        worker.off('exit', exited);
        if (how === 'exited') this.worker = null;
        resolve(how);
      };
      const busy = (m: FromDelivery) => m.type === 'busy' && finish('busy');
      const exited = () => finish('exited');
      worker.on('message', busy);
      worker.once('exit', exited);
      worker.postMessage({ type: 'stop', graceMs, idle } satisfies ToDelivery);
    });
  }

  private post(message: ToDelivery): void {
    this.posted++;
    this.worker!.postMessage(message);
  }

  private crashed(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.options.onCrash(err);
  }
}
