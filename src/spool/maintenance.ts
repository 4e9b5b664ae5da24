import type { Logger } from 'pino';
import type { SpoolDb } from './db.js';
import { isDiskFull, makeRoom } from './diskFull.js';
import type { SpoolRows } from './rows.js';
import { StatusMemory } from './statusMemory.js';

/**
 * At start: messages a crash left `delivering` are due again, and bodies that never got their
 * `250` are removed. Returns how many messages were put back. On a disk too full for even this
 * the start goes on (0): it is done at a later start, and those messages are sent late, not lost.
 */
export function recoverInterrupted(db: SpoolDb, rows: SpoolRows, logger?: Logger): number {
  try {
    return recover(db, rows);
  } catch (err) {
    if (!isDiskFull(err)) throw err;
    makeRoom(db);
  }
  try {
    return recover(db, rows);
  } catch (err) {
    if (!isDiskFull(err)) throw err;
    logger?.warn({ err }, 'the disk is full: messages interrupted by a crash are recovered at the next start');
    return 0;
  }
}

function recover(db: SpoolDb, rows: SpoolRows): number {
  const now = Date.now();
  return db.transaction(() => {
    const partial = db.prepare(`SELECT id FROM messages WHERE state = 'receiving'`).pluck().all() as number[];
    for (const id of partial) {
      rows.deleteBody(id);
      db.prepare(`DELETE FROM messages WHERE id = ?`).run(id);
    }
    return db.prepare(`UPDATE messages SET state = 'queued', next_attempt_at = ?, updated_at = ? WHERE state = 'delivering'`).run(now, now).changes;
  })();
}

/** Forgets finished messages (and their log) last touched before `before`. */
export function pruneFinished(db: SpoolDb, rows: SpoolRows, before: number): number {
  return db.transaction(() => {
    const ids = db.prepare(`SELECT id FROM messages WHERE updated_at < ? AND state IN ('delivered', 'failed', 'dropped')`).pluck().all(before) as number[];
    // The totals are counted from the log: count what is about to go first.
    if (ids.length > 0) new StatusMemory(db).catchUpTotals();
    const dropRecipients = db.prepare(`DELETE FROM recipients WHERE message_id = ?`);
    const dropMessage = db.prepare(`DELETE FROM messages WHERE id = ?`);
    for (const id of ids) {
      rows.deleteBody(id);
      dropRecipients.run(id);
      dropMessage.run(id);
    }
    // One pass over the log (it has no index on message_id).
    if (ids.length > 0) db.prepare(`DELETE FROM log WHERE message_id IN (SELECT value FROM json_each(?))`).run(JSON.stringify(ids));
    return ids.length;
  })();
}
