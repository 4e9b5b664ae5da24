import type { Logger } from 'pino';
import type { RelayEvents } from '../events.js';
import type { AttemptRecord, ClaimedMessage } from '../spool/store.js';
import { UpstreamError, type MessageSource, type SendPhase, type Upstream } from '../upstreams/types.js';
import type { Pass, Verdict } from './breaker.js';
import type { UpstreamGate } from './gate.js';
import { problemOf } from './holds.js';
import { classifyReply, isQuotaReply } from './retry.js';

export interface RoundResult {
  records: AttemptRecord[];
  /** Recipients still waiting after every upstream was tried, and the last temporary reply. */
  pending: string[];
  lastReply: string;
  lastUpstream: string | null;
  /** Whether any upstream was tried; false when every one was set aside (gate.ts). */
  tried: boolean;
  /** Probes under way on upstreams that were skipped: their verdict may open the way. */
  probing: Promise<void>[];
}

export interface RoundContext {
  logger: Logger;
  events?: RelayEvents;
  gate: UpstreamGate;
  /** How long an upstream that answered with a quota refusal is left alone. */
  quotaHoldMs: number;
}

/**
 * One delivery round for one message: try the upstreams in order; recipients that got a temporary
 * failure move on to the next upstream (fail-over); accepted and permanently refused ones are
 * final. Decides nothing about when to retry — the scheduler does.
 */
export async function deliverRound(message: ClaimedMessage, upstreams: Upstream[], body: MessageSource, context: RoundContext): Promise<RoundResult> {
  const { logger, events, gate } = context;
  const records: AttemptRecord[] = [];
  let pending = message.recipients;
  let lastReply = 'no upstream was tried';
  let lastUpstream: string | null = null;
  let tried = false;
  const probing: Promise<void>[] = [];

  // An HTTPS API's Retry-After says how long; an SMTP quota refusal does not, so quota_hold does.
  const holdForQuota = (upstream: string, reply: string, forMs = context.quotaHoldMs) => {
    gate.holds.hold(upstream, Date.now() + forMs, reply);
    logger.warn({ upstream, reply, until: new Date(Date.now() + forMs).toISOString() }, 'upstream quota reached: holding its mail');
  };
  /** Tells the breaker what the attempt showed; the upstream event carries its next probe. */
  const judged = (pass: Pass, verdict: Verdict): { nextProbeAt: Date | null } => {
    const changed = gate.breakers.report(pass, verdict);
    const next = gate.breakers.nextProbeAt(pass.upstream);
    if (changed && next !== null) logger.warn({ upstream: pass.upstream, reason: verdict && !verdict.up ? verdict.reason : undefined, next_probe_at: new Date(next).toISOString() }, 'upstream down: its mail goes to the next upstream or waits');
    else if (changed) logger.info({ upstream: pass.upstream }, 'upstream works again');
    return { nextProbeAt: next === null ? null : new Date(next) };
  };

  for (const upstream of upstreams) {
    if (pending.length === 0) break;
    lastUpstream = upstream.name;
    const pass = gate.enter(upstream.name);
    if (!pass.go) {
      lastReply = `${upstream.name} is ${pass.reason}`;
      if (pass.probing) probing.push(pass.probing);
      continue;
    }
    tried = true;
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    try {
      // Reachable as soon as MAIL FROM goes out: a probe need not hold others back for its DATA.
      const onSessionReady = () => void judged(pass, { up: true });
      const result = await upstream.send({ from: message.mailFrom, to: pending, spoolId: message.id }, body, { signal: pass.signal, onSessionReady });
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
      const { nextProbeAt } = judged(pass, { up: true });
      events?.emit('upstream', { upstream: upstream.name, ok: !quota, problem: quota ? 'quota' : undefined, reply: quota?.reply ?? result.reply, at: new Date(), nextProbeAt });
      pending = retryable;
    } catch (err) {
      const failure = err instanceof UpstreamError ? err : new UpstreamError(String((err as Error)?.message ?? err), null, 'io');
      const durationMs = elapsed();
      if (pass.signal.aborted && SETUP_PHASES.has(failure.phase)) {
        // Given up while setting up a session: another delivery found the upstream down meanwhile.
        records.push({ event: 'deferred', upstream: upstream.name, recipients: pending, reply: failure.reply, durationMs });
        logger.info({ id: message.id, upstream: upstream.name, reply: failure.reply, duration_ms: durationMs }, 'delivery attempt given up: upstream found down');
        judged(pass, null);
        lastReply = failure.reply;
        continue;
      }
      const klass = classifyReply(failure.code, failure.reply, failure.phase);
      records.push({ event: klass === 'permanent' ? 'failed' : 'deferred', upstream: upstream.name, recipients: pending, reply: failure.reply, durationMs });
      logger.warn(
        { id: message.id, upstream: upstream.name, reply: failure.reply, phase: failure.phase, class: klass, duration_ms: durationMs },
        'delivery attempt failed',
      );
      const problem = problemOf(failure);
      if (problem === 'quota') holdForQuota(upstream.name, failure.reply, failure.retryAfterMs);
      // A refusal after MAIL FROM still means the upstream itself is reachable and working.
      const reachable = failure.code !== null && ['mail', 'rcpt', 'data'].includes(failure.phase);
      const verdict: Verdict = SETUP_PHASES.has(failure.phase) ? { up: false, reason: failure.reply } : reachable ? { up: true } : null;
      const { nextProbeAt } = judged(pass, verdict);
      events?.emit('upstream', { upstream: upstream.name, ok: !problem && reachable, problem, reply: failure.reply, at: new Date(), nextProbeAt });
      if (klass === 'permanent') pending = [];
      else lastReply = failure.reply;
    }
  }
  return { records, pending, lastReply, lastUpstream, tried, probing };
}

/** Failures here are the upstream's: it cannot take mail now (src/delivery/breaker.ts). */
const SETUP_PHASES: ReadonlySet<SendPhase> = new Set(['connect', 'tls', 'greeting', 'ehlo', 'auth']);
