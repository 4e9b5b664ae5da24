import type { Logger } from 'pino';
import type { RelayEvents } from '../events.js';
import type { AttemptRecord, ClaimedMessage } from '../spool/store.js';
import { UpstreamError, type Upstream } from '../upstreams/types.js';
import type { Readable } from 'node:stream';
import { classifyReply } from './retry.js';

export interface RoundResult {
  records: AttemptRecord[];
  /** Recipients still waiting after every upstream was tried, and the last temporary reply. */
  pending: string[];
  lastReply: string;
  lastUpstream: string | null;
}

/**
 * One delivery round for one message: try the upstreams in order; recipients that got a temporary
 * failure move on to the next upstream (fail-over); accepted and permanently refused ones are
 * final. Decides nothing about when to retry — the scheduler does.
 */
export async function deliverRound(
  message: ClaimedMessage,
  upstreams: Upstream[],
  body: () => Readable,
  observe: { events?: RelayEvents; logger: Logger },
): Promise<RoundResult> {
  const records: AttemptRecord[] = [];
  let pending = message.recipients;
  let lastReply = 'no upstream was tried';
  let lastUpstream: string | null = null;

  for (const upstream of upstreams) {
    if (pending.length === 0) break;
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    lastUpstream = upstream.name;
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
      observe.logger.info(
        { id: message.id, upstream: upstream.name, reply: result.reply, accepted: result.accepted.length, rejected: result.rejected.length, duration_ms: durationMs },
        'delivery attempt',
      );
      observe.events?.emit('upstream', { upstream: upstream.name, ok: true, reply: result.reply, at: new Date() });
      pending = retryable;
    } catch (err) {
      const failure = err instanceof UpstreamError ? err : new UpstreamError(String((err as Error)?.message ?? err), null, 'io');
      const durationMs = elapsed();
      const klass = classifyReply(failure.code, failure.reply, failure.phase);
      records.push({ event: klass === 'permanent' ? 'failed' : 'deferred', upstream: upstream.name, recipients: pending, reply: failure.reply, durationMs });
      observe.logger.warn(
        { id: message.id, upstream: upstream.name, reply: failure.reply, phase: failure.phase, class: klass, duration_ms: durationMs },
        'delivery attempt failed',
      );
      // A refusal after MAIL FROM still means the upstream itself is reachable and working.
      const upstreamOk = failure.code !== null && ['mail', 'rcpt', 'data'].includes(failure.phase);
      const problem = failure.phase === 'auth' && failure.code !== null ? ('auth_failed' as const) : undefined;
      observe.events?.emit('upstream', { upstream: upstream.name, ok: upstreamOk, problem, reply: failure.reply, at: new Date() });
      if (klass === 'permanent') pending = [];
      else lastReply = failure.reply;
    }
  }
  return { records, pending, lastReply, lastUpstream };
}
