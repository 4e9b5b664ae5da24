import type { ReplyHints } from '../hints/hint.js';
import { headerLines } from '../message/headers.js';
import type { LogEntry, MessageDetail, MessageSummary } from '../spool/log.js';
import { recipientReasons, refusedPermanently } from '../spool/recipientReasons.js';

/**
 * A message as the API, the console and the CLI's `--json` all show it: snake_case and ISO 8601
 * times, like the MQTT status payload. `hint` says what to do about a reply when it is a known one
 * (src/hints), worked out now from today's config.
 */
export function summaryJson(m: MessageSummary, hints: ReplyHints) {
  return {
    id: m.id,
    received_at: iso(m.receivedAt),
    from: m.from,
    to: m.to,
    subject: m.subject,
    size: m.size,
    state: m.state,
    attempts: m.attempts,
    next_attempt_at: iso(m.nextAttemptAt),
    last_reply: m.lastReply,
    hint: m.state === 'delivered' ? null : hints.for(m.upstream, m.lastReply),
    upstream: m.upstream,
  };
}

/** One message with its recipients, header lines (`head`: the start of its body, while kept) and history. */
export function detailJson(m: MessageDetail, head: Buffer | null, hints: ReplyHints) {
  return {
    ...summaryJson(m, hints),
    client: m.client,
    auth_user: m.authUser,
    // A pending recipient's reply is the deferral that keeps it waiting (recipientReasons).
    recipients: recipientReasons(m).map(({ rcpt, reply, upstream }, i) => {
      const state = m.recipients[i]!.state;
      return { rcpt, state, upstream, reply, hint: state === 'failed' || state === 'pending' ? hints.for(upstream, reply) : null };
    }),
    // Retrying these will most likely fail again: the console asks first.
    refused_permanently: m.state === 'failed' ? refusedPermanently(m) : [],
    // Bodies are removed once delivered or dropped; then only the envelope and log remain.
    headers: head ? headerLines(head) : null,
    history: m.history.map((h) => historyJson(h, hints)),
  };
}

function historyJson(h: LogEntry, hints: ReplyHints) {
  const hint = h.event === 'deferred' || h.event === 'failed' ? hints.for(h.upstream, h.reply) : null;
  return { at: iso(h.at), event: h.event, upstream: h.upstream, recipients: h.recipients, reply: h.reply, hint, duration_ms: h.durationMs };
}

function iso(ms: number | null): string | null {
  return ms ? new Date(ms).toISOString() : null;
}
