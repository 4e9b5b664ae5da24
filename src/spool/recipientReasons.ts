import type { MessageDetail } from './log.js';

/** A recipient as a person reads it: a pending one carries why it waits. */
export interface RecipientReason {
  rcpt: string;
  /** The reply that keeps a pending recipient waiting, or a settled recipient's own reply. */
  reply: string | null;
  upstream: string | null;
}

/**
 * Each recipient's reason. A settled one has its own reply; a pending one has the last deferral
 * that named it since the last retry. When that round failed over (primary `451`, then the
 * secondary's connection refused), the message's most telling reply wins if it named this
 * recipient too: the same reason the list shows.
 */
export function recipientReasons(m: MessageDetail): RecipientReason[] {
  return m.recipients.map((r) => {
    if (r.state !== 'pending') return { rcpt: r.rcpt, reply: r.reply, upstream: r.upstream };
    const retries = m.history.map((e, i) => (e.event === 'retry' && e.recipients.includes(r.rcpt) ? i : -1));
    const deferrals = m.history.slice(Math.max(...retries) + 1).filter((e) => e.event === 'deferred' && e.recipients.includes(r.rcpt));
    const last = deferrals.at(-1);
    if (!last) return { rcpt: r.rcpt, reply: null, upstream: null };
    const round = deferrals.filter((e) => e.at === last.at);
    const telling = round.find((e) => e.reply === m.lastReply && e.upstream === m.upstream) ?? last;
    return { rcpt: r.rcpt, reply: telling.reply, upstream: telling.upstream };
  });
}

/**
 * The recipients an upstream refused for good (a 5xx reply): retrying them will most likely fail
 * again, so a person is asked first. Recipients that failed by giving up after 4xx are not among them.
 */
export function refusedPermanently(m: MessageDetail): string[] {
  return m.recipients.filter((r) => r.state === 'failed' && /^5\d\d\b/.test(r.reply ?? '')).map((r) => r.rcpt);
}
