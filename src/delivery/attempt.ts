import type { Logger } from 'pino';
import type { RelayEvents } from '../events.js';
import type { AttemptRecord, ClaimedMessage } from '../spool/store.js';
import { UnsupportedMessage, UpstreamError, type BodyFactory, type SendPhase, type Upstream } from '../upstreams/types.js';
import type { Pass, Verdict } from './breaker.js';
import type { UpstreamGate } from './gate.js';
import { problemOf } from './holds.js';
import { pacedReason, type Pacing } from './pacing.js';
import { classifyReply, isQuotaReply } from './retry.js';

export interface RoundResult {
  records: AttemptRecord[];
  /** Recipients still waiting after every upstream was tried, and why: the most telling reply (tellingness). */
  pending: string[];
  lastReply: string;
  /** The upstream that gave `lastReply`. */
  lastUpstream: string | null;
  /** Whether any upstream was tried; false when every one was set aside (gate.ts). */
  tried: boolean;
  /** Probes under way on upstreams that were skipped: their verdict may open the way. */
  probing: Promise<void>[];
  /** Upstreams skipped for being over their sending limits, and when the first has room again. */
  paced: string[];
  pacedUntil: number | null;
}

export interface RoundContext {
  logger: Logger;
  events?: RelayEvents;
  gate: UpstreamGate;
  /** How long an upstream that answered with a quota refusal is left alone. */
  quotaHoldMs: number;
  /** Keeps upstreams under their sending limits (pacing.ts); absent: no limits. */
  pacing?: Pacing | undefined;
}

/**
 * One delivery round for one message: try the upstreams in order; recipients that got a temporary
 * failure move on to the next upstream (fail-over); accepted and permanently refused ones are
 * final. Decides nothing about when to retry — the scheduler does.
 */
export async function deliverRound(message: ClaimedMessage, upstreams: Upstream[], body: BodyFactory, context: RoundContext): Promise<RoundResult> {
  const { logger, events, gate } = context;
  const records: AttemptRecord[] = [];
  let pending = message.recipients;
  let reason: Reason = { reply: 'no upstream was tried', upstream: null, weight: -1 };
  /** Keeps the more telling of the reason so far and this one; between equals, the earlier upstream's. */
  const heard = (upstream: string, reply: string, weight: number) => {
    if (weight > reason.weight) reason = { reply, upstream, weight };
  };
  let tried = false;
  /** Every upstream so far said it cannot take this message at all (UnsupportedMessage). */
  let onlyUnsupported = true;
  const probing: Promise<void>[] = [];
  const paced: string[] = [];
  let pacedUntil: number | null = null;

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
    // Over its sending limit: not tried, not failed — the next upstream, or a wait.
    const budget = context.pacing?.take(upstream.name, pending.length, message.id) ?? OPEN;
    if (!budget.go) {
      onlyUnsupported = false;
      paced.push(upstream.name);
      pacedUntil = Math.min(pacedUntil ?? Infinity, budget.until);
      heard(upstream.name, pacedReason(budget.until), WEIGHT.paced);
      continue;
    }
    const pass = gate.enter(upstream.name);
    if (!pass.go) {
      budget.settle(0);
      onlyUnsupported = false;
      heard(upstream.name, `${upstream.name} is ${pass.reason}`, WEIGHT.setAside);
      if (pass.probing) probing.push(pass.probing);
      continue;
    }
    tried = true;
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    try {
      // Reachable as soon as MAIL FROM goes out: a probe need not hold others back for its DATA.
      const onSessionReady = () => void judged(pass, { up: true });
      const envelope = { from: message.mailFrom, to: pending, spoolId: message.id, eightBit: message.traits.eightBit, declared8BitMime: message.traits.declared8BitMime };
      const result = await upstream.send(envelope, body, { signal: pass.signal, onSessionReady });
      budget.settle(result.accepted.length);
      onlyUnsupported = false;
      const durationMs = elapsed();
      if (result.accepted.length > 0) {
        records.push({ event: 'delivered', upstream: upstream.name, recipients: result.accepted, reply: result.reply, durationMs });
      }
      const retryable: string[] = [];
      let retryReply = '';
      for (const r of result.rejected) {
        if (classifyReply(r.code, r.reply, 'rcpt') === 'permanent') {
          records.push({ event: 'failed', upstream: upstream.name, recipients: [r.rcpt], reply: r.reply, durationMs });
        } else {
          retryable.push(r.rcpt);
          retryReply = r.reply;
          heard(upstream.name, r.reply, tellingness(r.code));
        }
      }
      if (retryable.length > 0) {
        records.push({ event: 'deferred', upstream: upstream.name, recipients: retryable, reply: retryReply, durationMs });
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
      budget.settle(0);
      if (failure instanceof UnsupportedMessage) {
        // Not the upstream's fault, nor the message's alone: the next upstream may take it. When
        // none can, the message fails now rather than waiting days for an upstream to change.
        const nowhere = onlyUnsupported && upstream === upstreams[upstreams.length - 1];
        records.push({ event: nowhere ? 'failed' : 'deferred', upstream: upstream.name, recipients: pending, reply: failure.reply, durationMs });
        logger.warn({ id: message.id, upstream: upstream.name, reply: failure.reply }, 'upstream cannot take this message');
        judged(pass, { up: true });
        if (nowhere) pending = [];
        else heard(upstream.name, failure.reply, WEIGHT.answered);
        continue;
      }
      onlyUnsupported = false;
      if (pass.signal.aborted && SETUP_PHASES.has(failure.phase)) {
        // Given up while setting up a session: another delivery found the upstream down meanwhile.
        records.push({ event: 'deferred', upstream: upstream.name, recipients: pending, reply: failure.reply, durationMs });
        logger.info({ id: message.id, upstream: upstream.name, reply: failure.reply, duration_ms: durationMs }, 'delivery attempt given up: upstream found down');
        judged(pass, null);
        heard(upstream.name, failure.reply, tellingness(failure.code));
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
      else heard(upstream.name, failure.reply, tellingness(failure.code));
    }
  }
  // Settled elsewhere: its place in a paced upstream's line is free.
  if (pending.length === 0) for (const name of paced) context.pacing?.leaveLine(name, message.id);
  return { records, pending, lastReply: reason.reply, lastUpstream: reason.upstream, tried, probing, paced, pacedUntil };
}

interface Reason {
  reply: string;
  upstream: string | null;
  weight: number;
}

/**
 * Why a message waits, when fail-over tried several upstreams: a server that answered (`451 …`,
 * `535 5.7.139 …`, even at login) says more than a socket error (`connection refused`), which says
 * more than relaybox's own note that an upstream is over its sending limit (which says when the
 * mail goes), which says more than one that it was set aside. Between equals the earlier
 * upstream wins: the primary is the one meant to carry the mail, so its trouble is the one to fix.
 * Permanent refusals are not in the running: they settle their recipients, whose rows keep them.
 */
const WEIGHT = { setAside: 0, paced: 0.5, socket: 1, answered: 2 } as const;

/** No sending limits to keep. */
const OPEN = { go: true as const, settle: (_accepted: number) => {} };

function tellingness(code: number | null): number {
  return code === null ? WEIGHT.socket : WEIGHT.answered;
}

/** Failures here are the upstream's: it cannot take mail now (src/delivery/breaker.ts). */
const SETUP_PHASES: ReadonlySet<SendPhase> = new Set(['connect', 'tls', 'greeting', 'ehlo', 'auth']);
