import type { SpoolDb } from './db.js';

/** What is still to be delivered, for a mailq-style last line: messages, of them deferred, and their bytes. */
export interface WaitingSummary {
  messages: number;
  deferred: number;
  bytes: number;
}

export function waitingSummary(db: SpoolDb): WaitingSummary {
  const row = db
    .prepare(
      `SELECT count(*) AS messages, coalesce(sum(state = 'deferred'), 0) AS deferred, coalesce(sum(size), 0) AS bytes
       FROM messages WHERE state IN ('queued', 'delivering', 'deferred')`,
    )
    .get() as WaitingSummary;
  return { messages: row.messages, deferred: row.deferred, bytes: row.bytes };
}
