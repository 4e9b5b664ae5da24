import { hostname as osHostname } from 'node:os';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Rewrite } from '../config/rewrite.js';
import type { Config } from '../config/schema.js';
import { formatDuration } from '../config/duration.js';
import type { SizeLimit } from '../config/sizeLimits.js';
import { PACED_REPLY_PREFIX } from '../config/rate.js';
import { pacedWaitMs } from '../spool/log.js';
import type { RelayEvents } from '../events.js';
import type { AttemptRecord, ClaimedMessage, DeliveryOutcome, SpoolStore } from '../spool/store.js';
import type { BodyFactory, Upstream } from '../upstreams/types.js';
import { deliverRound, type RoundResult } from './attempt.js';
import { BREAKER_BACKOFF, type OpenBreaker } from './breaker.js';
import { UpstreamGate } from './gate.js';
import { OutgoingMessages } from './outgoing.js';
import type { Pacing } from './pacing.js';
import { retryDelay } from './retry.js';
import { fitBySize } from './sizeFit.js';
import { Router, type RouteGroup } from './routes.js';

export interface SchedulerOptions {
  spool: SpoolStore;
  upstreams: Upstream[];
  delivery: Config['delivery'];
  logger: Logger;
  events?: RelayEvents;
  /** The EHLO name, also the domain of Message-IDs the fix-ups add; default: the OS hostname. */
  hostname?: string;
  /** `smtp.rewrite`: the senders put on outgoing mail; default: the device's. */
  rewrite?: Config['smtp']['rewrite'];
  /** `routes`: which upstreams a message takes; default: every upstream, in order. */
  routes?: Config['routes'];
  /** `dkim`: sign outgoing mail, after the fix-ups. */
  dkim?: Config['dkim'];
  /** `data_dir`; DKIM keeps big messages in `<data_dir>/tmp` while signing. Needed with `dkim`. */
  dataDir?: string;
  /** Upstreams found down by the previous delivery thread: they stay set aside. */
  openBreakers?: readonly OpenBreaker[];
  /** Each upstream's `max_message_bytes` (config/sizeLimits.ts): larger messages skip it. Unset: no limits. */
  sizeLimits?: ReadonlyMap<string, SizeLimit>;
  /** How long a down upstream is skipped before a probe; default: see breakerBackoff(). */
  breakerBackoff?: { firstMs: number; maxMs: number };
  /** Keeps upstreams under their sending limits; absent: none. */
  pacing?: Pacing;
}

/**
 * Sleeps until the next message is due, claims up to `concurrency` at a time and delivers them.
 * Wakes early when something is accepted. Rechecks the spool now and then so that a `queue retry`
 * from the CLI (another process) is picked up without a restart.
 */
export class DeliveryScheduler {
  static readonly RECHECK_MS = 5_000;
  /** Deliveries talking to an upstream; each holds one of `concurrency` slots. */
  private readonly sending = new Set<Promise<void>>();
  /** Outcomes on their way into the spool. */
  private readonly recording = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private wakeQueued = false;
  private running = false;
  private readonly outgoing: OutgoingMessages;
  private readonly router: Router;
  private readonly rewrite: Rewrite;
  private readonly gate: UpstreamGate;

  constructor(private readonly options: SchedulerOptions) {
    this.outgoing = new OutgoingMessages({
      hostname: options.hostname ?? osHostname(),
      dkim: options.dkim,
      dataDir: options.dataDir ?? '.',
      logger: options.logger,
    });
    this.rewrite = options.rewrite ?? { envelope_from: '', header_from: '' };
    this.router = new Router({ routes: options.routes ?? [], upstreams: options.upstreams, rewrite: this.rewrite });
    this.gate = new UpstreamGate({ restored: options.openBreakers ?? [], backoff: options.breakerBackoff ?? breakerBackoff(options.delivery.retry) });
  }

  /** The upstreams found down, for the next delivery thread (see thread.ts). */
  openBreakers(): OpenBreaker[] {
    return this.gate.breakers.snapshot();
  }

  /** A person signed in again for `upstream`: it is no longer set aside, and asks for a token from the new sign-in. */
  reconnected(upstream: string): void {
    this.gate.breakers.close(upstream);
    this.options.upstreams.find((u) => u.name === upstream)?.signedInAgain?.();
  }

  start(): void {
    this.running = true;
    this.pump();
  }

  /** Deliveries in flight, or outcomes not yet recorded. */
  get busy(): boolean {
    return this.sending.size > 0 || this.recording.size > 0;
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
    const pending = [...this.sending, ...this.recording];
    if (pending.length === 0) return;
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled(pending), new Promise((r) => (timeout = setTimeout(r, graceMs)))]);
    clearTimeout(timeout);
  }

  /** Delivers one claimed message now (send-test); resolves when the outcome is recorded. */
  deliverClaimed(message: ClaimedMessage): Promise<void> {
    return this.startDelivery(message).recorded;
  }

  private pump(): void {
    if (!this.running) return;
    clearTimeout(this.timer);
    const { spool, delivery, logger } = this.options;
    const free = delivery.concurrency - this.sending.size;
    try {
      for (const message of spool.claimDue(Date.now(), free)) {
        const job = this.startDelivery(message).sent.finally(() => {
          this.sending.delete(job);
          this.wake();
        });
        this.sending.add(job);
      }
    } catch (err) {
      logger.error({ err }, 'cannot read the spool; retrying shortly');
    }
    if (this.sending.size >= delivery.concurrency) return; // a finishing delivery pumps again
    const delay = Math.max(0, spool.wakeAt() - Date.now());
    this.timer = setTimeout(() => this.pump(), Math.min(delay, DeliveryScheduler.RECHECK_MS));
    this.timer.unref();
  }

  /**
   * A delivery slot is free again as soon as the upstream has answered; the outcome is committed
   * with the next batch meanwhile (the spool keeps the message claimed until then), so a slow
   * commit never holds back the next message.
   */
  private startDelivery(message: ClaimedMessage): { sent: Promise<void>; recorded: Promise<void> } {
    const { spool, logger } = this.options;
    const outcome = this.attempt(message);
    const recorded: Promise<void> = outcome
      .then((result) => spool.recordOutcome(message.id, result))
      // The message stays `delivering` and is put back at the next start; delivering twice beats losing it.
      .catch((err: unknown) => logger.error({ err, id: message.id }, 'cannot record the delivery outcome'))
      .finally(() => {
        spool.release(message.id);
        this.recording.delete(recorded);
        this.wake();
      });
    this.recording.add(recorded);
    return { sent: outcome.then(noop, noop), recorded };
  }

  private async attempt(message: ClaimedMessage): Promise<DeliveryOutcome> {
    const { spool, delivery, logger, events } = this.options;
    const { body: inMemory } = message;
    const stored = inMemory ? () => Readable.from([Buffer.from(inMemory.buffer, inMemory.byteOffset, inMemory.byteLength)]) : () => spool.body(message.id);
    const records: AttemptRecord[] = [];
    const context = { events, logger, gate: this.gate, quotaHoldMs: delivery.quota_hold, pacing: this.options.pacing };
    const retryDue = Date.now() + retryDelay(message.attempts, delivery.retry);
    let retryAt = 0;
    let reason: DeliveryOutcome['reason'];
    /** Only sending limits held the mail back: no upstream was tried, so this round is no attempt. */
    let onlyPaced = true;
    // One round per route group, one after the other: each group is its own transaction upstream,
    // with the senders of its route.
    for (const group of this.routeGroups(message)) {
      const sized = fitBySize(group.upstreams, group.recipients, message.size, this.options.sizeLimits);
      if (sized.failed) {
        records.push(sized.failed);
        continue;
      }
      const upstreams = sized.upstreams;
      const body = this.outgoing.body(message, stored, group.rewrite);
      const envelope = { ...message, mailFrom: this.outgoing.envelopeFrom(message, group.rewrite), recipients: group.recipients };
      const round = await this.deliverGroup(envelope, upstreams, body, context);
      // Every upstream of the group is set aside (quota, or down): come back when the first may be
      // tried, not before — and not later either when none was tried: the message itself has not failed.
      // A down upstream's next probe is not worth waiting for past give_up_after, though: the
      // message is failed then and a person told, on time.
      const giveUpAt = Math.max(Date.now(), message.queuedAt + delivery.retry.give_up_after);
      // A paced upstream is not blocked: it counts by when it has room again (pacedUntil).
      const unpaced = upstreams.map((u) => u.name).filter((name) => !round.paced.includes(name));
      const reopens = unpaced.length === 0 ? Infinity : this.gate.allBlockedUntil(unpaced, { probesUntil: giveUpAt });
      const pacedOnly = !round.tried && round.pacedUntil !== null && reopens !== null;
      if (round.pending.length > 0) {
        const due = pacedOnly ? Math.min(round.pacedUntil!, reopens) : round.tried || reopens === null ? Math.max(retryDue, reopens ?? 0) : reopens;
        // Tried elsewhere and failed: the paced upstream's room may come sooner than the backoff.
        retryAt = Math.max(retryAt, round.pacedUntil === null ? due : Math.min(due, round.pacedUntil));
      }
      records.push(...round.records);
      if (round.pending.length === 0) continue;
      if (!pacedOnly) onlyPaced = false;
      reason = { upstream: round.lastUpstream, reply: round.lastReply };
      // A wait for a sending limit is no failure: it never gives a message up.
      const givingUp = !pacedOnly && this.waitedPastGiveUp(message);
      if (givingUp || !round.records.some((r) => r.event === 'deferred')) {
        records.push({
          event: givingUp ? 'failed' : 'deferred',
          upstream: round.lastUpstream,
          recipients: round.pending,
          reply: givingUp ? `gave up after ${formatDuration(delivery.retry.give_up_after)}: ${round.lastReply}` : round.lastReply,
          durationMs: 0,
        });
      }
    }
    const paced = onlyPaced && reason !== undefined && records.every((r) => r.event === 'deferred');
    return { records, retryAt: retryAt || retryDue, ...(reason ? { reason } : {}), ...(paced ? { paced } : {}) };
  }

  /** give_up_after has passed, not counting the time the message waited for sending limits. */
  private waitedPastGiveUp(message: ClaimedMessage): boolean {
    const { spool, delivery } = this.options;
    const waited = Date.now() - message.queuedAt;
    if (waited < delivery.retry.give_up_after || !this.options.pacing) return waited >= delivery.retry.give_up_after;
    return waited - pacedWaitMs(spool.db, message.id, PACED_REPLY_PREFIX) >= delivery.retry.give_up_after;
  }

  /**
   * A round; when every upstream was set aside but one is being probed, the probe's verdict is
   * due within its session timeouts: waiting for it beats a deferral when it says "works again".
   */
  private async deliverGroup(message: ClaimedMessage, upstreams: Upstream[], body: BodyFactory, context: Parameters<typeof deliverRound>[3]): Promise<RoundResult> {
    const round = await deliverRound(message, upstreams, body, context);
    if (round.tried || round.probing.length === 0 || !this.running) return round;
    // Bounded all the same: a probe past MAIL FROM reports only when its DATA is done.
    let timer: NodeJS.Timeout | undefined;
    const { connect, greeting } = this.options.delivery.timeouts;
    await Promise.race([...round.probing, new Promise((resolve) => (timer = setTimeout(resolve, connect + 2 * greeting)))]);
    clearTimeout(timer);
    return deliverRound(message, upstreams, body, context);
  }

  /** `send-test --upstream` pins one upstream; otherwise the routes decide, per recipient. */
  private routeGroups(message: ClaimedMessage): Pick<RouteGroup, 'upstreams' | 'recipients' | 'rewrite'>[] {
    const { upstreams } = this.options;
    if (message.onlyUpstream) {
      return [{ upstreams: upstreams.filter((u) => u.name === message.onlyUpstream), recipients: message.recipients, rewrite: this.rewrite }];
    }
    return this.router.plan(message);
  }
}

function noop(): void {}

/**
 * 30 s doubling to 10 min, but never longer than a message would wait for its own retry
 * (`delivery.retry`): whoever set retries to come quicker wants a fixed upstream used quicker too.
 */
function breakerBackoff(retry: { first: number; max: number }): { firstMs: number; maxMs: number } {
  const firstMs = Math.min(BREAKER_BACKOFF.firstMs, retry.first);
  return { firstMs, maxMs: Math.max(firstMs, Math.min(BREAKER_BACKOFF.maxMs, retry.max)) };
}
