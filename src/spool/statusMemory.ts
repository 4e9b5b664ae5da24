import { withoutSync, type SpoolDb } from './db.js';

/** Final recipients since the spool was created: what `delivered_total` and `failed_total` say. */
export interface Totals {
  delivered: number;
  failed: number;
}

/** An upstream's health as the status last knew it; times are ISO 8601. */
export interface RememberedUpstream {
  state: string;
  last_ok: string | null;
  last_error: string | null;
  last_error_at: string | null;
}

interface StoredTotals extends Totals {
  /** The log row these totals count up to (inclusive). */
  logId: number;
}

/**
 * What the console, MQTT and Home Assistant showed before a restart, kept in the spool so that a
 * restart does not wipe it. Nothing here is written per message: the totals are counted from the
 * delivery log (which every outcome writes anyway) and stored only at start and before the log is
 * pruned; upstream health is stored when it changes. A crash loses nothing the log has.
 */
export class StatusMemory {
  constructor(private readonly db: SpoolDb) {}

  /** Counts the log rows written since the totals were last stored, stores the sum and returns it. */
  catchUpTotals(): Totals {
    return this.db.transaction(() => {
      const stored = this.read<StoredTotals>('totals') ?? { delivered: 0, failed: 0, logId: 0 };
      const rows = this.db
        .prepare(`SELECT id, event, recipients FROM log WHERE id > ? AND event IN ('delivered', 'failed') ORDER BY id`)
        .all(stored.logId) as { id: number; event: 'delivered' | 'failed'; recipients: string | null }[];
      const lastId = (this.db.prepare(`SELECT max(id) FROM log`).pluck().get() as number | null) ?? stored.logId;
      const totals: StoredTotals = { delivered: stored.delivered, failed: stored.failed, logId: Math.max(lastId, stored.logId) };
      for (const row of rows) totals[row.event] += recipientCount(row.recipients);
      if (totals.logId !== stored.logId) this.write('totals', totals);
      return { delivered: totals.delivered, failed: totals.failed };
    })();
  }

  /**
   * Upstream health as last stored, with each upstream's last success brought up to date from
   * the log rows written since (a crash between two stores loses no success).
   */
  upstreams(): Record<string, RememberedUpstream> {
    const stored = this.read<{ logId: number; upstreams: Record<string, RememberedUpstream> }>('upstreams') ?? { logId: 0, upstreams: {} };
    const since = this.db
      .prepare(`SELECT upstream, max(at) AS at FROM log WHERE id > ? AND event = 'delivered' AND upstream IS NOT NULL GROUP BY upstream`)
      .all(stored.logId) as { upstream: string; at: number }[];
    for (const { upstream, at } of since) {
      const known = stored.upstreams[upstream] ?? { state: 'ok', last_ok: null, last_error: null, last_error_at: null };
      const lastOk = new Date(at).toISOString();
      // A success logged after the stored error: the upstream worked last.
      const state = known.last_error_at && known.last_error_at > lastOk ? known.state : 'ok';
      stored.upstreams[upstream] = { ...known, state, last_ok: lastOk };
    }
    return stored.upstreams;
  }

  saveUpstreams(upstreams: Record<string, RememberedUpstream>): void {
    const logId = (this.db.prepare(`SELECT max(id) FROM log`).pluck().get() as number | null) ?? 0;
    // Display state: the next synced commit (the next message) makes it durable.
    withoutSync(this.db, () => this.write('upstreams', { logId, upstreams }));
  }

  private read<T>(key: string): T | undefined {
    const value = this.db.prepare(`SELECT value FROM status_memory WHERE key = ?`).pluck().get(key) as string | undefined;
    return value === undefined ? undefined : (JSON.parse(value) as T);
  }

  private write(key: string, value: unknown): void {
    this.db.prepare(`INSERT INTO status_memory (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`).run(key, JSON.stringify(value));
  }
}

function recipientCount(recipients: string | null): number {
  if (!recipients) return 0;
  let n = 1;
  for (let i = recipients.indexOf('\n'); i !== -1; i = recipients.indexOf('\n', i + 1)) n++;
  return n;
}
