import type { SpoolDb } from './db.js';
import type { Row } from './rows.js';

/** A rule's quiet period on one topic: alerts arriving before `holdUntil` wait for a digest. */
export interface AlertWindow {
  rule: string;
  topic: string;
  holdUntil: number;
  intervalMs: number;
  mailFrom: string;
  recipients: string[];
}

export interface HeldAlert {
  id: number;
  at: number;
  payload: Buffer;
}

function toWindow(r: Row): AlertWindow {
  return {
    rule: r.rule,
    topic: r.topic,
    holdUntil: r.hold_until,
    intervalMs: r.interval_ms,
    mailFrom: r.mail_from,
    recipients: String(r.recipients).split('\n'),
  };
}

/**
 * Alerts held back by a storm guard, in the spool so that they survive a crash. Every write is
 * its own transaction committed with the spool's synchronous=FULL: when a method returns, the
 * write is on disk and the caller may acknowledge the alert to the broker.
 */
export class HeldAlerts {
  constructor(private readonly db: SpoolDb) {}

  window(rule: string, topic: string): AlertWindow | undefined {
    const r = this.db.prepare(`SELECT * FROM alert_windows WHERE rule = ? AND topic = ?`).get(rule, topic) as Row | undefined;
    return r && toWindow(r);
  }

  windows(): AlertWindow[] {
    return (this.db.prepare(`SELECT * FROM alert_windows ORDER BY hold_until`).all() as Row[]).map(toWindow);
  }

  /** Starts (or moves) the quiet period after a mail went out. */
  openWindow(w: AlertWindow): void {
    this.db
      .prepare(
        `INSERT INTO alert_windows (rule, topic, hold_until, interval_ms, mail_from, recipients) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (rule, topic) DO UPDATE SET hold_until = excluded.hold_until, interval_ms = excluded.interval_ms,
           mail_from = excluded.mail_from, recipients = excluded.recipients`,
      )
      .run(w.rule, w.topic, w.holdUntil, w.intervalMs, w.mailFrom, w.recipients.join('\n'));
  }

  hold(rule: string, topic: string, at: number, payload: Buffer): void {
    this.db.prepare(`INSERT INTO alert_held (rule, topic, at, payload) VALUES (?, ?, ?, ?)`).run(rule, topic, at, payload);
  }

  countHeld(rule: string, topic: string): number {
    return this.db.prepare(`SELECT count(*) FROM alert_held WHERE rule = ? AND topic = ?`).pluck().get(rule, topic) as number;
  }

  /** Oldest first, at most `limit`; the digest lists these. */
  held(rule: string, topic: string, limit: number): HeldAlert[] {
    return (this.db.prepare(`SELECT id, at, payload FROM alert_held WHERE rule = ? AND topic = ? ORDER BY id LIMIT ?`).all(rule, topic, limit) as Row[])
      .map((r) => ({ id: r.id, at: r.at, payload: r.payload as Buffer }));
  }

  /**
   * After the digest of the alerts up to `lastId` is spooled: forget them, and either keep the
   * window closed until `holdUntil` or, with null, end it.
   */
  release(rule: string, topic: string, lastId: number, holdUntil: number | null): void {
    this.db.transaction(() => {
      this.db.prepare(`DELETE FROM alert_held WHERE rule = ? AND topic = ? AND id <= ?`).run(rule, topic, lastId);
      if (holdUntil === null) this.db.prepare(`DELETE FROM alert_windows WHERE rule = ? AND topic = ?`).run(rule, topic);
      else this.db.prepare(`UPDATE alert_windows SET hold_until = ? WHERE rule = ? AND topic = ?`).run(holdUntil, rule, topic);
    })();
  }
}
