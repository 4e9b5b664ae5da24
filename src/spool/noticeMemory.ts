import type { SpoolDb } from './db.js';

/** The client column of mail relaybox writes as a notice or DSN: never noticed about in turn. */
export const NOTICE_CLIENT = 'relaybox notice';

/** An upstream's trouble waiting for the next digest (one per upstream and kind). */
export interface UpstreamNote {
  upstream: string;
  kind: 'upstream_down' | 'quota';
  reply: string | null;
  at: number;
}

/**
 * What notices remember across a restart, so that a crash turns no failure into a storm. The
 * failed messages and stuck ones are not copied: the digest reads them from the log and the
 * queue past the cursors here. Written only when a window opens, an upstream changes state or a
 * digest went out — never per message.
 */
export interface NoticeState {
  /** The last log row a digest covered: failures after it go into the next one. */
  failedLogId: number;
  /** The newest message already named as stuck. */
  stuckId: number;
  /** When the open window's digest goes out; null: no window open. */
  flushAt: number | null;
  notes: UpstreamNote[];
  /** Each upstream's state as last noticed (`ok`, `auth_failed`, `quota`, `upstream_down`). */
  upstreams: Record<string, string>;
  diskFull: boolean;
}

/** A message as a notice names it. */
export interface NoticedMessage {
  id: number;
  mailFrom: string;
  subject: string | null;
  receivedAt: number;
  /** The recipients the log row is about (failed), or all still pending (stuck). */
  recipients: string[];
  upstream: string | null;
  reply: string | null;
  at: number;
}

const KEY = 'notify';

export class NoticeMemory {
  constructor(private readonly db: SpoolDb) {}

  /** The stored state; the first time, cursors start at today's log (no notices about the past). */
  load(): NoticeState {
    const value = this.db.prepare(`SELECT value FROM status_memory WHERE key = ?`).pluck().get(KEY) as string | undefined;
    if (value !== undefined) return JSON.parse(value) as NoticeState;
    const failedLogId = (this.db.prepare(`SELECT max(id) FROM log`).pluck().get() as number | null) ?? 0;
    return { failedLogId, stuckId: 0, flushAt: null, notes: [], upstreams: {}, diskFull: false };
  }

  save(state: NoticeState): void {
    this.db
      .prepare(`INSERT INTO status_memory (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`)
      .run(KEY, JSON.stringify(state));
  }

  /** What a failure notice or DSN needs of a message; undefined once it is pruned. */
  message(id: number): { mailFrom: string; receivedAt: number; isNotice: boolean } | undefined {
    const r = this.db.prepare(`SELECT mail_from, received_at, client FROM messages WHERE id = ?`).get(id) as Row | undefined;
    return r && { mailFrom: r.mail_from, receivedAt: r.received_at, isNotice: r.client === NOTICE_CLIENT };
  }

  /** Failures logged after `afterLogId`, oldest first, notices left out; and the last log row looked at. */
  failedSince(afterLogId: number, limit: number): { messages: NoticedMessage[]; total: number; lastLogId: number } {
    const lastLogId = (this.db.prepare(`SELECT max(id) FROM log`).pluck().get() as number | null) ?? afterLogId;
    const where = `FROM log l JOIN messages m ON m.id = l.message_id
       WHERE l.id > ? AND l.id <= ? AND l.event = 'failed' AND m.client IS NOT '${NOTICE_CLIENT}'`;
    const total = this.db.prepare(`SELECT count(*) ${where}`).pluck().get(afterLogId, lastLogId) as number;
    const rows = this.db
      .prepare(`SELECT l.message_id AS id, m.mail_from, m.subject, m.received_at, l.recipients, l.upstream, l.reply, l.at ${where} ORDER BY l.id LIMIT ?`)
      .all(afterLogId, lastLogId, limit) as Row[];
    return { messages: rows.map(toNoticed), total, lastLogId: Math.max(lastLogId, afterLogId) };
  }

  /** Messages still undelivered that were queued before `queuedBefore`, past `afterId`, notices left out. */
  stuckSince(afterId: number, queuedBefore: number, limit: number): NoticedMessage[] {
    const rows = this.db
      .prepare(
        `SELECT m.id, m.mail_from, m.subject, m.received_at, m.upstream, m.last_reply AS reply, m.queued_at AS at,
           (SELECT group_concat(rcpt, char(10)) FROM recipients r WHERE r.message_id = m.id AND r.state = 'pending') AS recipients
         FROM messages m WHERE m.id > ? AND m.state IN ('queued', 'delivering', 'deferred') AND m.queued_at <= ?
           AND m.client IS NOT '${NOTICE_CLIENT}' ORDER BY m.id LIMIT ?`,
      )
      .all(afterId, queuedBefore, limit) as Row[];
    return rows.map(toNoticed);
  }
}

interface Row {
  id: number;
  client?: string | null;
  mail_from: string;
  subject: string | null;
  received_at: number;
  recipients: string | null;
  upstream: string | null;
  reply: string | null;
  at: number;
}

function toNoticed(r: Row): NoticedMessage {
  return {
    id: r.id,
    mailFrom: r.mail_from,
    subject: r.subject,
    receivedAt: r.received_at,
    recipients: r.recipients ? r.recipients.split('\n') : [],
    upstream: r.upstream,
    reply: r.reply,
    at: r.at,
  };
}
