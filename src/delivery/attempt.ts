import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { RelayEvents } from '../events.js';
import type { AttemptRecord, ClaimedMessage } from '../spool/store.js';
import { UpstreamError, type Upstream } from '../upstreams/types.js';
import { problemOf, type UpstreamHolds } from './holds.js';
import { classifyReply, isQuotaReply } from './retry.js';

export interface RoundResult {
  records: AttemptRecord[];
  /** Recipients still waiting after every upstream was tried, and the last temporary reply. */
  pending: string[];
  lastReply: string;
  lastUpstream: string | null;
}

export interface RoundContext {
  logger: Logger;
  events?: RelayEvents;
  holds: UpstreamHolds;
  /** How long an upstream that answered with a quota refusal is left alone. */
  quotaHoldMs: number;
}

/**
 * One delivery round for one message: try the upstreams in order; recipients that got a temporary
 * failure move on to the next upstream (fail-over); accepted and permanently refused ones are
 * final. Decides nothing about when to retry — the scheduler does.
 */
export async function deliverRound(message: ClaimedMessage, upstreams: Upstream[], body: () => Readable, context: RoundContext): Promise<RoundResult> {
  const { logger, events, holds } = context;
  const records: AttemptRecord[] = [];
  let pending = message.recipients;
  let lastReply = 'no upstream was tried';
  let lastUpstream: string | null = null;

  const holdForQuota = (upstream: string, reply: string) => {
    holds.hold(upstream, Date.now() + context.quotaHoldMs, reply);
    logger.warn({ upstream, reply, until: new Date(Date.now() + context.quotaHoldMs).toISOString() }, 'upstream quota reached: holding its mail');
  };

  for (const upstream of upstreams) {
    if (pending.length === 0) break;
    lastUpstream = upstream.name;
    const held = holds.heldUntil(upstream.name);
    if (held) {
      lastReply = `${upstream.name} is held until ${new Date(held.at).toISOString()}: ${held.reason}`;
      continue;
    }
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    try {
      const result = await upstream.send({ from: message.mailFrom, to: pending, spoolId: message.id }, body);
      const durationMs = elapsed();
      if (result.accepted.length > 0) {
        records.push({ event: 'delivered', upstream: upstream.name, recipients: result.accepted, reply: result.reply, durationMs });
      }
      const retryable: string[] = [];
      for (const r of result.rejected) {
        if (classifyReply(r.code, r.reply, 'rcpt') === 'permanent') {
          records.push({ event: 'failed', upstream: upstream.name, recipients: [r.rcpt], reply: r.reply, durationMs });
        } else {
          retryable.push(r.rcpt);
          lastReply = r.reply;
        }
      }
      if (retryable.length > 0) {
        records.push({ event: 'deferred', upstream: upstream.name, recipients: retryable, reply: lastReply, durationMs });
      }
      logger.info(
        { id: message.id, upstream: upstream.name, reply: result.reply, accepted: result.accepted.length, rejected: result.rejected.length, duration_ms: durationMs },
        'delivery attempt',
      );
      const quota = result.rejected.find((r) => r.code !== null && isQuotaReply(r.reply));
      if (quota) holdForQuota(upstream.name, quota.reply);
      events?.emit('upstream', { upstream: upstream.name, ok: !quota, problem: quota ? 'quota' : undefined, reply: quota?.reply ?? result.reply, at: new Date() });
      pending = retryable;
    } catch (err) {
      const failure = err instanceof UpstreamError ? err : new UpstreamError(String((err as Error)?.message ?? err), null, 'io');
      const durationMs = elapsed();
      const klass = classifyReply(failure.code, failure.reply, failure.phase);
      records.push({ event: klass === 'permanent' ? 'failed' : 'deferred', upstream: upstream.name, recipients: pending, reply: failure.reply, durationMs });
      logger.warn(
        { id: message.id, upstream: upstream.name, reply: failure.reply, phase: failure.phase, class: klass, duration_ms: durationMs },
        'delivery attempt failed',
      );
      const problem = problemOf(failure);
      if (problem === 'quota') holdForQuota(upstream.name, failure.reply);
      // A refusal after MAIL FROM still means the upstream itself is reachable and working.
      const upstreamOk = !problem && failure.code !== null && ['mail', 'rcpt', 'data'].includes(failure.phase);
      events?.emit('upstream', { upstream: upstream.name, ok: upstreamOk, problem, reply: failure.reply, at: new Date() });
      if (klass === 'permanent') pending = [];
      else lastReply = failure.reply;
    }
  }
  return { records, pending, lastReply, lastUpstream };
}
