import type { Logger } from 'pino';
import type { MessageEvent, RelayEvents } from '../events.js';
import { BodyWriter, readBody } from './body.js';
import type { SpoolDb } from './db.js';
import { DueQueue } from './dueQueue.js';
import { isDiskFull, LeftoverBodies, makeRoom, retryWhileFull } from './diskFull.js';
import { pruneFinished, recoverInterrupted } from './maintenance.js';
import { GroupCommit } from './groupCommit.js';
import { writeOutcome } from './outcome.js';
import { CLAIMED_COLUMNS, SpoolRows, type Row } from './rows.js';
import { clientAddressOf, SEVEN_BIT, type AcceptedMessage, type ClaimedMessage, type DeliveryOutcome } from './types.js';

export type { AcceptedMessage, AttemptRecord, ClaimedMessage, DeliveryOutcome, MailTraits } from './types.js';

/** Bodies up to this size go to delivery with the message, from memory. */
const HANDED_OVER_BYTES = 64 * 1024;

/** The write side of the spool: accept, claim, record outcomes, retry, drop. */
export class SpoolStore {
  private readonly commits: GroupCommit;
  private readonly rows: SpoolRows;
  /** Messages handed to delivery whose outcome is not recorded yet. */
  private readonly claimed = new Set<number>();
  private readonly due = new DueQueue();
  /** Claimed messages whose outcome is on its way to disk. */
  private readonly settling = new Set<number>();
  /** Outcomes the disk had no room for, written again shortly; no new claims meanwhile. */
  private readonly unwritten = new Set<number>();
  private readonly leftovers: LeftoverBodies;
  private closed = false;

  /**
   * `queued` receives every message this store commits as queued, for a delivery that runs
   * elsewhere (the delivery thread, with its own store); without it, this store's own `claimDue`
   * takes them from memory.
   */
  constructor(
    readonly db: SpoolDb,
    private readonly events?: RelayEvents,
    private readonly options: { queued?: (message: ClaimedMessage) => void; logger?: Logger } = {},
  ) {
    this.commits = new GroupCommit(db);
    this.rows = new SpoolRows(db);
    this.leftovers = new LeftoverBodies(db, this.rows);
  }

  /** A writer for one incoming body; hand it to `accept` when the data is complete. */
  receive(): BodyWriter {
    return new BodyWriter(this.db);
  }

  /**
   * Drops a partial body. When the disk is too full even for the delete, it is tried again every
   * few seconds (and at the next start by recoverInterrupted): nothing half-stored stays.
   */
  discard(body: BodyWriter): void {
    try {
      body.discard();
    } catch (err) {
      if (!isDiskFull(err) || body.id === null) throw err;
      this.leftovers.add(body.id);
    }
  }

  /** Commits the message and fsyncs; only after this resolves may the client hear `250`. */
  async accept(body: BodyWriter, message: AcceptedMessage): Promise<number> {
    const now = Date.now();
    const id = await this.commits.durable(() => this.rows.insertMessage(body, message, now));
    const queued: ClaimedMessage = {
      id,
      mailFrom: message.mailFrom,
      recipients: [...new Set(message.recipients)],
      size: body.size,
      attempts: 0,
      queuedAt: now,
      onlyUpstream: message.onlyUpstream ?? null,
      traits: message.traits ?? SEVEN_BIT,
      authUser: message.authUser ?? null,
      clientAddress: clientAddressOf(message.client),
    };
    // A copy of its own: a small Buffer shares an 8 KiB pool, which a thread hand-over would copy whole.
    if (body.inline && body.inline.length <= HANDED_OVER_BYTES) queued.body = new Uint8Array(body.inline);
    if (this.options.queued) this.options.queued(queued);
    else this.offer(queued);
    this.emit({ id, event: 'accepted', upstream: null, reply: null, recipients: message.recipients });
    return id;
  }

  /**
   * Up to `limit` due messages, oldest due first, for delivery now: fresh ones from memory, the
   * spool read only when something else may be due (see DueQueue). They are marked `delivering`
   * in memory at once and on disk with the next commit (no fsync of their own: a claim lost to a
   * crash only means the message is queued again, as it would be anyway) — so a delivery costs
   * the SD card one shared write, not two.
   */
  claimDue(now: number, limit: number): ClaimedMessage[] {
    // An outcome waits for room on the disk: more deliveries would only be more to resend after a crash.
    if (limit <= 0 || this.unwritten.size > 0) return [];
    const picked = this.due.scanDue(now) ? this.scanDue(now, limit) : [];
    // A fresh message may have reached delivery twice (a scan found it while it was being handed
    // over): only one still `queued` on disk and not in flight is taken.
    picked.push(...this.due.take(limit - picked.length, (id) => this.claimed.has(id) || this.rows.stateOf(id) !== 'queued'));
    for (const m of picked) {
      this.claimed.add(m.id);
      this.commits
        .lazy(() => {
          // Delivered before the claim reached the disk: the outcome says it all, one write fewer.
          if (this.settling.has(m.id)) return;
          this.rows.sql(`UPDATE messages SET state = 'delivering', next_attempt_at = NULL, updated_at = ? WHERE id = ? AND state IN ('queued', 'deferred')`).run(now, m.id);
        })
        // Not on disk (a full disk): the message stays claimed here, and its outcome is written
        // all the same. A crash meanwhile finds it queued and sends it again: a duplicate, never a loss.
        .catch(() => {});
    }
    return picked;
  }

  private scanDue(now: number, limit: number): ClaimedMessage[] {
    const wanted = limit + this.claimed.size;
    const due = this.rows.sql(
      `SELECT ${CLAIMED_COLUMNS} FROM messages
       WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ? AND state IN ('queued', 'deferred')
       ORDER BY next_attempt_at LIMIT ?`,
    ).all(now, wanted) as Row[];
    const rows = due.filter((r) => !this.claimed.has(r.id)).slice(0, limit);
    const onlyFresh = rows.every((r) => this.due.isFresh(r.id));
    const picked = rows.map((r) => this.due.remove(r.id) ?? this.rows.claimedMessage(r));
    const exhausted = due.length < wanted;
    const nextAt = exhausted
      ? (this.rows.sql(`SELECT min(next_attempt_at) FROM messages WHERE next_attempt_at > ?`).pluck().get(now) as number | null)
      : null;
    this.due.scanned(now, { exhausted, onlyFresh, nextAt });
    return picked;
  }

  /** Claims one message if it is waiting (queued or deferred), on disk at once; null when someone else has it. */
  claim(id: number, now = Date.now()): ClaimedMessage | null {
    const r = this.rows.sql(
      `UPDATE messages SET state = 'delivering', next_attempt_at = NULL, updated_at = ? WHERE id = ? AND state IN ('queued', 'deferred')
       RETURNING ${CLAIMED_COLUMNS}`,
    ).get(now, id) as Row | undefined;
    if (!r) return null;
    this.claimed.add(id);
    this.due.remove(id);
    return this.rows.claimedMessage(r);
  }

  /** A message another store committed as queued: due now, no need to read it back. */
  offer(message: ClaimedMessage): void {
    this.due.offer(message);
  }

  /** Something became due that this store did not see (a retry through another store): look now. */
  dueNow(): void {
    this.due.dueAt(0);
  }

  /** Dropped through another store: not to be delivered from memory. */
  forget(id: number): void {
    this.due.remove(id);
  }

  /** When delivery should look at the spool next (ms): now while fresh mail waits. Costs no query. */
  wakeAt(now = Date.now()): number {
    if (this.unwritten.size > 0) return now + 1_000; // claims wait for the outcomes (claimDue)
    return this.due.wakeAt(now);
  }

  /** When the next queued or deferred message that is not already being delivered falls due (ms), or null. */
  nextDueAt(): number | null {
    const rows = this.rows.sql(`SELECT id, next_attempt_at FROM messages WHERE next_attempt_at IS NOT NULL ORDER BY next_attempt_at LIMIT ?`).all(
      this.claimed.size + 1,
    ) as Row[];
    return rows.find((r) => !this.claimed.has(r.id))?.next_attempt_at ?? null;
  }

  body(id: number) {
    return readBody(this.rows, id);
  }

  /**
   * Records one delivery round and moves the message to its next state. On a full disk the
   * outcome is kept here and written again until it fits: the message stays claimed meanwhile
   * (not sent again); if relaybox stops first, it is `delivering` and sent again at the next start.
   */
  async recordOutcome(id: number, outcome: DeliveryOutcome): Promise<void> {
    this.settling.add(id);
    let events: MessageEvent[] | undefined;
    try {
      events = await retryWhileFull(() => this.commits.lazy(() => writeOutcome(this.rows, { id, outcome, now: Date.now() })), {
        stopped: () => this.closed,
        onFull: () => this.outcomeWaits(id),
      });
    } finally {
      this.settling.delete(id);
      this.outcomeSettled(id, events !== undefined);
    }
    this.claimed.delete(id);
    this.due.dueAt(outcome.retryAt); // if it was deferred; an extra scan otherwise
    for (const e of events) this.emit(e);
  }

  private outcomeWaits(id: number): void {
    if (this.unwritten.size === 0) this.options.logger?.warn({ id }, 'the disk is full: delivery outcomes wait in memory to be written; no new deliveries start meanwhile');
    this.unwritten.add(id);
    makeRoom(this.db);
  }

  private outcomeSettled(id: number, written: boolean): void {
    if (!this.unwritten.delete(id) || this.unwritten.size > 0) return;
    if (written) this.options.logger?.info('delivery outcomes written again; deliveries go on');
    this.due.dueAt(0);
  }

  /** Delivery gave up on a message without an outcome: it waits, `delivering`, for the next start. */
  release(id: number): void {
    this.claimed.delete(id);
  }

  /** Makes a failed or deferred message due now; its failed recipients are tried again. */
  retry(id: number): boolean {
    const retried = this.markRetry(id);
    if (retried) {
      this.dueNow();
      this.events?.emit('due', { id });
    }
    return retried;
  }

  private markRetry(id: number): boolean {
    const now = Date.now();
    return this.db.transaction(() => {
      const info = this.rows.sql(`UPDATE messages SET state = 'queued', next_attempt_at = ?, queued_at = ?, updated_at = ? WHERE id = ? AND state IN ('failed', 'deferred', 'queued')`)
        .run(now, now, now, id);
      if (info.changes === 0) return false;
      const rcpts = this.rows.sql(`SELECT rcpt FROM recipients WHERE message_id = ? AND state IN ('failed', 'pending')`).pluck().all(id) as string[];
      this.rows.sql(`UPDATE recipients SET state = 'pending' WHERE message_id = ? AND state = 'failed'`).run(id);
      this.rows.appendLog(id, now, 'retry', null, rcpts, 'retry requested', null);
      return true;
    })();
  }

  /** Like `retry` for each of `ids`, in one transaction (thousands are one commit) and one wake-up. */
  retryMany(ids: number[]): number[] {
    const retried = this.db.transaction(() => ids.filter((id) => this.markRetry(id)))();
    if (retried.length > 0) {
      this.dueNow();
      this.events?.emit('due', { id: retried[0]! });
    }
    return retried;
  }

  /** Removes a message that is not delivered yet; the log keeps it as `dropped`. */
  drop(id: number, reason = 'dropped by a person'): boolean {
    const now = Date.now();
    const rcpts = this.db.transaction(() => {
      const info = this.rows.sql(`UPDATE messages SET state = 'dropped', next_attempt_at = NULL, last_reply = ?, updated_at = ? WHERE id = ? AND state IN ('queued', 'deferred', 'failed', 'delivering')`)
        .run(reason, now, id);
      if (info.changes === 0) return null;
      const pending = this.rows.sql(`SELECT rcpt FROM recipients WHERE message_id = ? AND state IN ('pending', 'failed')`).pluck().all(id) as string[];
      this.rows.sql(`UPDATE recipients SET state = 'dropped' WHERE message_id = ? AND state IN ('pending', 'failed')`).run(id);
      this.rows.deleteBody(id);
      this.rows.appendLog(id, now, 'dropped', null, pending, reason, null);
      return pending;
    })();
    if (rcpts === null) return false;
    this.forget(id);
    this.emit({ id, event: 'dropped', upstream: null, reply: reason, recipients: rcpts });
    return true;
  }

  /** At start: messages a crash left `delivering` are due again; bodies that never got their `250` go (see maintenance.ts on a full disk). */
  recoverInterrupted(): number {
    return recoverInterrupted(this.db, this.rows, this.options.logger);
  }

  /** Forgets finished messages (and their log) last touched before `before`. */
  prune(before: number): number {
    return pruneFinished(this.db, this.rows, before);
  }

  /** Commits anything queued now (durable writes still wait for their sync). */
  flush(): void {
    this.commits.flush();
  }

  /** Commits and syncs anything still queued, then closes the database. */
  close(): void {
    this.closed = true;
    this.leftovers.stop();
    this.commits.close();
  }

  private emit(e: Omit<MessageEvent, 'at'> & { at?: Date }): void {
    this.events?.emit('message', { ...e, at: e.at ?? new Date() });
  }
}
