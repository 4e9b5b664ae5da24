import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { formatDuration } from '../config/duration.js';
import type { RelayEvents } from '../events.js';
import type { ClaimedMessage, SpoolStore } from '../spool/store.js';
import type { Upstream } from '../upstreams/types.js';
import { deliverRound } from './attempt.js';
import { retryDelay } from './retry.js';

export interface SchedulerOptions {
  spool: SpoolStore;
  upstreams: Upstream[];
  delivery: Config['delivery'];
  logger: Logger;
  events?: RelayEvents;
}

/**
 * Sleeps until the next message is due, claims up to `concurrency` at a time and delivers them.
 * Wakes early when something is accepted. Rechecks the spool now and then so that a `queue retry`
 * from the CLI (another process) is picked up without a restart.
 */
export class DeliveryScheduler {
  static readonly RECHECK_MS = 5_000;
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private wakeQueued = false;
  private running = false;

  constructor(private readonly options: SchedulerOptions) {}

  start(): void {
    this.running = true;
    this.pump();
  }

  /** Something may be due now (a message was accepted or retried). */
  wake(): void {
    if (!this.running || this.wakeQueued) return;
    this.wakeQueued = true;
    setImmediate(() => {
      this.wakeQueued = false;
      this.pump();
    });
  }

  /** Stops claiming; waits up to `graceMs` for deliveries in flight. Unfinished ones are recovered at next start. */
  async stop(graceMs: number): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    if (this.inFlight.size === 0) return;
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => (timeout = setTimeout(r, graceMs)))]);
    clearTimeout(timeout);
  }

  /** Delivers one claimed message now (send-test); resolves when the outcome is recorded. */
  deliverClaimed(message: ClaimedMessage): Promise<void> {
    return this.deliver(message);
  }

  private pump(): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    const { spool, delivery, logger } = this.options;
    const free = delivery.concurrency - this.inFlight.size;
    try {
      for (const message of spool.claimDue(Date.now(), free)) {
        const job = this.deliver(message).finally(() => {
          this.inFlight.delete(job);
          this.wake();
        });
        this.inFlight.add(job);
      }
    } catch (err) {
      logger.error({ err }, 'cannot read the spool; retrying shortly');
    }
    if (this.inFlight.size >= delivery.concurrency) return; // a finishing delivery pumps again
    const next = safe(() => spool.nextDueAt());
    const delay = next === null ? DeliveryScheduler.RECHECK_MS : Math.max(0, next - Date.now());
    this.timer = setTimeout(() => this.pump(), Math.min(delay, DeliveryScheduler.RECHECK_MS));
    this.timer.unref();
  }

  private async deliver(message: ClaimedMessage): Promise<void> {
    const { spool, delivery, logger, events } = this.options;
    const upstreams = this.upstreamsFor(message);
    const round = await deliverRound(message, upstreams, () => spool.body(message.id), { events, logger });
    const records = round.records;
    if (round.pending.length > 0) {
      const givingUp = Date.now() - message.queuedAt >= delivery.retry.give_up_after;
      if (givingUp || !records.some((r) => r.event === 'deferred')) {
        records.push({
          event: givingUp ? 'failed' : 'deferred',
          upstream: round.lastUpstream,
          recipients: round.pending,
          reply: givingUp ? `gave up after ${formatDuration(delivery.retry.give_up_after)}: ${round.lastReply}` : round.lastReply,
          durationMs: 0,
        });
      }
    }
    const retryAt = Date.now() + retryDelay(message.attempts, delivery.retry);
    try {
      await spool.recordOutcome(message.id, { records, retryAt });
    } catch (err) {
      // The message stays `delivering` and is put back at the next start; delivering twice beats losing it.
      logger.error({ err, id: message.id }, 'cannot record the delivery outcome');
    }
  }

  private upstreamsFor(message: ClaimedMessage): Upstream[] {
    const { upstreams } = this.options;
    if (message.onlyUpstream) return upstreams.filter((u) => u.name === message.onlyUpstream);
    return upstreams;
  }
}

function safe<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch {
    return null;
  }
}
