import type { MessageEvent } from '../events.js';
import type { Row, SpoolRows } from './rows.js';
import type { AttemptRecord, DeliveryOutcome } from './types.js';

/**
 * Writes one delivery round into the spool (inside the caller's transaction): each recipient's
 * state, a log row per attempt, the message's next state; the body goes once delivered. Returns
 * the state changes to announce.
 */
export function writeOutcome(rows: SpoolRows, { id, outcome, now }: { id: number; outcome: DeliveryOutcome; now: number }): MessageEvent[] {
  const setRcpt = rows.sql(`UPDATE recipients SET state = ?, upstream = ?, reply = ? WHERE message_id = ? AND rcpt = ? AND state = 'pending'`);
  const events: MessageEvent[] = [];
  let last: AttemptRecord | undefined;
  outcome.records.forEach((r, i) => {
    if (r.event !== 'deferred') for (const rcpt of r.recipients) setRcpt.run(r.event, r.upstream, r.reply, id, rcpt);
    rows.appendLog(id, now, r.event, r.upstream, r.recipients, r.reply, r.durationMs);
    // A deferral that a later upstream in the same round settled is an attempt, not a state change.
    const settledLater = r.event === 'deferred' && outcome.records.slice(i + 1).some((l) => l.recipients.some((x) => r.recipients.includes(x)));
    if (!settledLater) events.push({ id, event: r.event, recipients: r.recipients, at: new Date(now), ...standing(r, outcome) });
    last = r;
  });
  const counts = rows.sql(`SELECT sum(state = 'pending') AS pending, sum(state = 'failed') AS failed FROM recipients WHERE message_id = ?`)
    .get(id) as Row;
  const current = rows.stateOf(id);
  // Dropped by a person while in flight: keep the log of the attempt, but the drop stands.
  if (current === 'dropped') return events;
  const state = counts.pending > 0 ? 'deferred' : counts.failed > 0 ? 'failed' : 'delivered';
  const why = state === 'deferred' && outcome.reason ? outcome.reason : last;
  rows.sql(
      `UPDATE messages SET state = ?, attempts = attempts + ?, next_attempt_at = ?, last_reply = coalesce(?, last_reply),
         upstream = coalesce(?, upstream), updated_at = ? WHERE id = ?`,
    )
    .run(state, outcome.paced ? 0 : 1, state === 'deferred' ? outcome.retryAt : null, why?.reply ?? null, why?.upstream ?? null, now, id);
  if (state === 'delivered') rows.deleteBody(id);
  return events;
}

/**
 * What a state event says about its record: a deferral that stands says why the recipients wait,
 * the round's most telling reply, with the upstream that gave it and that attempt's duration.
 */
function standing(r: AttemptRecord, outcome: DeliveryOutcome): Pick<MessageEvent, 'upstream' | 'reply' | 'durationMs'> {
  const reason = r.event === 'deferred' ? outcome.reason : undefined;
  if (!reason || reason.upstream === r.upstream) return { upstream: r.upstream, reply: reason?.reply ?? r.reply, durationMs: r.durationMs };
  const attempt = outcome.records.find((x) => x.event === 'deferred' && x.upstream === reason.upstream);
  return { upstream: reason.upstream, reply: reason.reply, ...(attempt ? { durationMs: attempt.durationMs } : {}) };
}
