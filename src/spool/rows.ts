import type { Statement } from 'better-sqlite3';
import type { SpoolDb } from './db.js';
import { clientAddressOf, SEVEN_BIT, type AcceptedMessage, type ClaimedMessage, type MailTraits } from './types.js';

export type Row = Record<string, any>;

/** The columns of messages that claimedMessage() reads. */
export const CLAIMED_COLUMNS = 'id, mail_from, size, attempts, queued_at, only_upstream, traits, auth_user, client';

/** messages.traits: one small integer, 0 (no byte in the row) for plain 7-bit mail. */
const EIGHT_BIT = 1;
const DECLARED_8BITMIME = 2;
const DECLARED_SMTPUTF8 = 4;

function traitBits(t: MailTraits): number {
  return (t.eightBit ? EIGHT_BIT : 0) | (t.declared8BitMime ? DECLARED_8BITMIME : 0) | (t.declaredSmtpUtf8 ? DECLARED_SMTPUTF8 : 0);
}

function traitsOf(bits: number): MailTraits {
  return { eightBit: (bits & EIGHT_BIT) !== 0, declared8BitMime: (bits & DECLARED_8BITMIME) !== 0, declaredSmtpUtf8: (bits & DECLARED_SMTPUTF8) !== 0 };
}

/** A body written so far (body.ts's BodyWriter), as the message row needs it. */
export interface StagedBody {
  /** The row its chunks already belong to; null while it is small enough to go inline. */
  readonly id: number | null;
  readonly size: number;
  takeInline(): Buffer | null;
  flushRemainder(): void;
}

/** Row-level reads and writes of the spool, with their statements prepared once; no policy here. */
export class SpoolRows {
  private readonly statements = new Map<string, Statement<unknown[]>>();

  constructor(private readonly db: SpoolDb) {}

  /** Prepared once, reused: preparing is most of the cost of a small statement. */
  sql(text: string): Statement<unknown[]> {
    let stmt = this.statements.get(text);
    if (!stmt) this.statements.set(text, (stmt = this.db.prepare<unknown[]>(text)));
    return stmt;
  }

  insertMessage(body: StagedBody, m: AcceptedMessage, now: number): number {
    const values = [now, now, m.mailFrom, m.client ?? null, m.authUser ?? null, m.subject ?? null, body.size, now, m.onlyUpstream ?? null, traitBits(m.traits ?? SEVEN_BIT), now];
    let id: number;
    if (body.id === null) {
      const info = this.sql(
          `INSERT INTO messages (received_at, queued_at, mail_from, client, auth_user, subject, size, state, next_attempt_at, only_upstream, traits, updated_at, body)
           VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)`,
        )
        .run(...values, body.takeInline());
      id = Number(info.lastInsertRowid);
    } else {
      id = body.id;
      body.flushRemainder();
      this.sql(
          `UPDATE messages SET received_at = ?, queued_at = ?, mail_from = ?, client = ?, auth_user = ?, subject = ?, size = ?,
             state = 'queued', next_attempt_at = ?, only_upstream = ?, traits = ?, updated_at = ? WHERE id = ?`,
        )
        .run(...values, id);
    }
    const addRcpt = this.sql(`INSERT OR IGNORE INTO recipients (message_id, rcpt, state) VALUES (?, ?, 'pending')`);
    for (const rcpt of m.recipients) addRcpt.run(id, rcpt);
    const logFrom = this.appendLog(id, now, 'accepted', null, m.recipients, null, null);
    this.sql(`UPDATE messages SET log_from = ? WHERE id = ?`).run(logFrom, id);
    return id;
  }

  stateOf(id: number): string | undefined {
    return this.sql(`SELECT state FROM messages WHERE id = ?`).pluck().get(id) as string | undefined;
  }

  /** A row of messages (CLAIMED_COLUMNS) as delivery wants it. */
  claimedMessage(r: Row): ClaimedMessage {
    return {
      id: r.id,
      mailFrom: r.mail_from,
      recipients: this.sql(`SELECT rcpt FROM recipients WHERE message_id = ? AND state = 'pending'`).pluck().all(r.id) as string[],
      size: r.size,
      attempts: r.attempts,
      queuedAt: r.queued_at,
      onlyUpstream: r.only_upstream,
      traits: traitsOf(r.traits ?? 0),
      authUser: r.auth_user,
      clientAddress: clientAddressOf(r.client),
    };
  }

  deleteBody(id: number): void {
    this.sql(`UPDATE messages SET body = NULL WHERE id = ? AND body IS NOT NULL`).run(id);
    this.sql(`DELETE FROM body_chunks WHERE message_id = ?`).run(id);
  }

  appendLog(id: number, at: number, event: string, upstream: string | null, rcpts: string[], reply: string | null, durationMs: number | null): number {
    const info = this.sql(`INSERT INTO log (at, message_id, event, upstream, recipients, reply, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?)`)
      .run(at, id, event, upstream, rcpts.join('\n'), reply, durationMs);
    return Number(info.lastInsertRowid);
  }
}
