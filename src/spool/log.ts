import type { SpoolDb } from './db.js';
import type { LocalTime } from './logTime.js';
import type { MessageState } from '../events.js';
import type { Row } from './rows.js';

/** Read-side queries for the CLI, and later the web console and status. Nothing here writes. */

export interface MessageSummary {
  id: number;
  receivedAt: number;
  from: string;
  to: string[];
  subject: string | null;
  size: number;
  state: MessageState;
  attempts: number;
  nextAttemptAt: number | null;
  lastReply: string | null;
  upstream: string | null;
}

export interface RecipientStatus {
  rcpt: string;
  state: 'pending' | 'delivered' | 'failed' | 'dropped';
  upstream: string | null;
  reply: string | null;
}

export interface LogEntry {
  at: number;
  messageId: number;
  event: string;
  upstream: string | null;
  recipients: string[];
  reply: string | null;
  durationMs: number | null;
}

export interface MessageDetail extends MessageSummary {
  client: string | null;
  authUser: string | null;
  recipients: RecipientStatus[];
  history: LogEntry[];
}

const SUMMARY = `SELECT m.id, m.received_at, m.mail_from, m.subject, m.size, m.state, m.attempts, m.next_attempt_at,
  m.last_reply, m.upstream, m.client, m.auth_user, m.log_from,
  (SELECT group_concat(rcpt, char(10)) FROM recipients r WHERE r.message_id = m.id) AS rcpts
  FROM messages m`;

function toSummary(r: Row): MessageSummary {
  return {
    id: r.id,
    receivedAt: r.received_at,
    from: r.mail_from,
    to: r.rcpts ? String(r.rcpts).split('\n') : [],
    subject: r.subject,
    size: r.size,
    state: r.state,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    lastReply: r.last_reply,
    upstream: r.upstream,
  };
}

function toLogEntry(r: Row): LogEntry {
  return {
    at: r.at,
    messageId: r.message_id,
    event: r.event,
    upstream: r.upstream,
    recipients: r.recipients ? String(r.recipients).split('\n') : [],
    reply: r.reply,
    durationMs: r.duration_ms,
  };
}

/**
 * Newest first; `before` is an id, for paging through thousands (keyset: each page walks the
 * primary key from there, never an OFFSET). `text` matches sender, subject or a recipient,
 * case-insensitively for ASCII, as a plain substring (no wildcards).
 */
export function listMessages(db: SpoolDb, query: { status?: string; limit?: number; before?: number; text?: string } = {}): MessageSummary[] {
  const where = [`m.state != 'receiving'`];
  const args: unknown[] = [];
  if (query.status) {
    where.push('m.state = ?');
    args.push(query.status);
  }
  if (query.text) {
    const like = `%${query.text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    where.push(
      `(m.mail_from LIKE ? ESCAPE '\\' OR m.subject LIKE ? ESCAPE '\\'
        OR EXISTS (SELECT 1 FROM recipients r WHERE r.message_id = m.id AND r.rcpt LIKE ? ESCAPE '\\'))`,
    );
    args.push(like, like, like);
  }
  if (query.before !== undefined) {
    where.push('m.id < ?');
    args.push(query.before);
  }
  args.push(Math.min(Math.max(query.limit ?? 50, 1), 1000));
  const rows = db.prepare(`${SUMMARY} WHERE ${where.join(' AND ')} ORDER BY m.id DESC LIMIT ?`).all(...args) as Row[];
  return rows.map(toSummary);
}

export function getMessage(db: SpoolDb, id: number): MessageDetail | null {
  const row = db.prepare(`${SUMMARY} WHERE m.id = ? AND m.state != 'receiving'`).get(id) as Row | undefined;
  if (!row) return null;
  const recipients = db.prepare(`SELECT rcpt, state, upstream, reply FROM recipients WHERE message_id = ? ORDER BY rcpt`).all(id) as RecipientStatus[];
  const history = (db.prepare(`SELECT * FROM log WHERE id >= ? AND message_id = ? ORDER BY id`).all(row.log_from ?? 0, id) as Row[]).map(toLogEntry);
  return { ...toSummary(row), client: row.client, authUser: row.auth_user, recipients, history };
}

/** The first bytes of a stored message: enough for its header block. */
export function messageHead(db: SpoolDb, id: number, bytes = 65_536): Buffer | null {
  const inline = db.prepare(`SELECT substr(body, 1, ?) FROM messages WHERE id = ?`).pluck().get(bytes, id) as Buffer | null;
  if (inline) return inline;
  // Chunks are usually 256 KiB, but a body that arrived while ingress was over its memory budget
  // is stored piece by piece as it came, so the head may span several.
  const pieces: Buffer[] = [];
  let have = 0;
  for (const data of db.prepare(`SELECT data FROM body_chunks WHERE message_id = ? ORDER BY seq`).pluck().iterate(id) as Iterable<Buffer>) {
    pieces.push(data);
    have += data.length;
    if (have >= bytes) break;
  }
  return pieces.length === 0 ? null : Buffer.concat(pieces).subarray(0, bytes);
}

/**
 * How long a message has waited for upstreams' sending limits: each deferral whose reply starts
 * with `prefix` (`paced until `) until the row after it (or `now`). Read only when the message is
 * about to be given up, so that such waits never count toward give_up_after.
 */
export function pacedWaitMs(db: SpoolDb, id: number, prefix: string, now = Date.now()): number {
  const from = (db.prepare(`SELECT log_from FROM messages WHERE id = ?`).pluck().get(id) as number | null | undefined) ?? 0;
  const rows = db.prepare(`SELECT at, event, reply FROM log WHERE id >= ? AND message_id = ? ORDER BY id`).all(from, id) as Array<{ at: number; event: string; reply: string | null }>;
  let total = 0;
  rows.forEach((r, i) => {
    if (r.event === 'deferred' && r.reply?.startsWith(prefix)) total += Math.max(0, (rows[i + 1]?.at ?? now) - r.at);
  });
  return total;
}

export interface LogExportRow extends LogEntry {
  from: string;
  subject: string | null;
  size: number;
}

/** The delivery log, oldest first, one row at a time (it can be long). */
export function* exportLog(db: SpoolDb, query: { since?: number; until?: number } = {}): Generator<LogExportRow> {
  const rows = db
    .prepare(
      `SELECT l.*, m.mail_from, m.subject, m.size FROM log l JOIN messages m ON m.id = l.message_id
       WHERE l.at >= ? AND l.at < ? ORDER BY l.id`,
    )
    .iterate(query.since ?? 0, query.until ?? Number.MAX_SAFE_INTEGER) as IterableIterator<Row>;
  for (const r of rows) yield { ...toLogEntry(r), from: r.mail_from, subject: r.subject, size: r.size };
}

export interface QueueCounts {
  queued: number;
  delivering: number;
  deferred: number;
  failed: number;
  /** Age of the oldest message still waiting to be delivered, in seconds. */
  oldestAgeS: number;
}

export function queueCounts(db: SpoolDb, now = Date.now()): QueueCounts {
  const r = db
    .prepare(
      `SELECT sum(state = 'queued') AS queued, sum(state = 'delivering') AS delivering, sum(state = 'deferred') AS deferred,
         sum(state = 'failed') AS failed,
         min(CASE WHEN state IN ('queued', 'delivering', 'deferred') THEN received_at END) AS oldest
       FROM messages WHERE state IN ('queued', 'delivering', 'deferred', 'failed')`,
    )
    .get() as Row;
  return {
    queued: r.queued ?? 0,
    delivering: r.delivering ?? 0,
    deferred: r.deferred ?? 0,
    failed: r.failed ?? 0,
    oldestAgeS: r.oldest ? Math.max(0, Math.round((now - r.oldest) / 1000)) : 0,
  };
}

/** The columns of the exported log (CLI and web CSV alike), in order. */
export const LOG_COLUMNS = ['time', 'id', 'event', 'from', 'to', 'subject', 'size', 'upstream', 'reply', 'duration_ms'] as const;
/** The CSV's columns: the time is local (logTime.ts), its offset beside it. */
export const CSV_COLUMNS = ['time', 'utc_offset', ...LOG_COLUMNS.slice(1)] as const;

export function logRecord(r: LogExportRow): Record<(typeof LOG_COLUMNS)[number], string | number | null> {
  return {
    time: new Date(r.at).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    id: r.messageId,
    event: r.event,
    from: r.from,
    to: r.recipients.join(' '),
    subject: r.subject,
    size: r.size,
    upstream: r.upstream,
    reply: r.reply,
    duration_ms: r.durationMs,
  };
}

/** A row for a spreadsheet: `time` in local wall-clock form (see localTimeFormatter), `utc_offset` beside it. */
export function csvRecord(r: LogExportRow, local: (ms: number) => LocalTime): Record<(typeof CSV_COLUMNS)[number], string | number | null> {
  return { ...logRecord(r), ...local(r.at) };
}
