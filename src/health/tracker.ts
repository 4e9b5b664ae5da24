import { EventEmitter } from 'node:events';
import type { RelayEvents, UpstreamEvent } from '../events.js';
import type { ReplyHints } from '../hints/hint.js';
import type { SpoolDb } from '../spool/db.js';
import type { DiskSpace, DiskStatus } from '../spool/diskSpace.js';
import { queueCounts } from '../spool/log.js';
import type { RateBudget } from '../spool/sentWindows.js';
import { StatusMemory } from '../spool/statusMemory.js';
import type { UpstreamBudgets } from './budgets.js';

export type UpstreamState = 'unknown' | 'ok' | 'down' | 'auth_failed' | 'quota' | 'clock' | 'ehlo_rejected';

export interface UpstreamStatus {
  state: UpstreamState;
  last_ok: string | null;
  last_error: string | null;
  last_error_at: string | null;
  /** What to do about last_error, when the reply is a known one (src/hints). */
  hint: string | null;
  /** While deliveries skip the upstream after a failure before MAIL FROM: when one tries it again. */
  next_probe_at: string | null;
  /** What is left of its sending limits (`upstreams[].rate`), per window with a limit; absent without limits. */
  rate?: RateBudget;
}

/** The `<prefix>/status` payload of SPEC; the web console and /metrics read the same numbers. */
export interface StatusSnapshot {
  state: 'ok' | 'degraded' | 'down';
  queue: { queued: number; deferred: number; failed: number; oldest_age_s: number };
  upstreams: Record<string, UpstreamStatus>;
  /** Final recipients since the spool was created (a restart keeps them). */
  delivered_total: number;
  failed_total: number;
  version: string;
  uptime_s: number;
  /** Free space in data_dir; `accepting: false` (new mail hears 452 4.3.1) makes the state degraded. Beyond SPEC: additive. */
  disk?: DiskStatus;
}

/** A state or error change is stored this soon; only a change of last success waits for the hour. */
const SAVE_AFTER_MS = 1_000;
const SAVE_SUCCESS_EVERY_MS = 3_600_000;

export interface StatusTrackerOptions {
  events: RelayEvents;
  db: SpoolDb;
  upstreams: string[];
  version: string;
  disk?: DiskSpace;
  /** Words the fix for an upstream's last error (src/hints). */
  hints?: ReplyHints;
  /** Upstreams' sending limits and what is left of them. */
  budgets?: UpstreamBudgets;
}

/**
 * Keeps what the spool can't tell cheaply — each upstream's last success and error, the totals —
 * by listening to the event bus, and announces `change` whenever a snapshot would differ.
 * Consumers throttle as they need (MQTT: at most once a second). Both survive a restart: they
 * start from the spool's memory (spool/statusMemory.ts) and are stored back when they change.
 * Build it before delivery starts, so that every outcome after its count arrives as an event.
 */
export class StatusTracker extends EventEmitter<{ change: [] }> {
  private readonly upstreams = new Map<string, UpstreamStatus>();
  private delivered: number;
  private failed: number;
  private readonly startedAt = Date.now();
  private readonly memory: StatusMemory;
  private saveTimer: NodeJS.Timeout | undefined;
  private saveDueAt = 0;
  private lastSaved = Date.now();
  /** A sent message leaves the minute's window: status is told again then. */
  private budgetTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: StatusTrackerOptions) {
    super();
    this.memory = new StatusMemory(options.db);
    ({ delivered: this.delivered, failed: this.failed } = this.memory.catchUpTotals());
    const remembered = this.memory.upstreams();
    for (const name of options.upstreams) {
      const known = remembered[name];
      this.upstreams.set(name, {
        state: known && isUpstreamState(known.state) ? known.state : 'unknown',
        last_ok: known?.last_ok ?? null,
        last_error: known?.last_error ?? null,
        last_error_at: known?.last_error_at ?? null,
        hint: known?.last_error ? (options.hints?.for(name, known.last_error) ?? null) : null,
        // The delivery thread's breakers start closed after a restart.
        next_probe_at: null,
      });
    }
    options.events.on('upstream', (e) => this.onUpstream(e));
    options.events.on('message', (e) => {
      if (e.event === 'delivered') this.delivered += e.recipients.length;
      if (e.event === 'failed') this.failed += e.recipients.length;
      if (e.event === 'delivered' && e.upstream && options.budgets?.has(e.upstream)) this.budgetChangesLater();
      this.emit('change');
    });
    options.events.on('due', () => this.emit('change'));
    options.events.on('reconnected', (e) => this.onReconnected(e.upstream));
    options.disk?.on('change', () => this.emit('change'));
  }

  /** Stores what is not stored yet; call before the spool closes. */
  stop(): void {
    clearTimeout(this.saveTimer);
    clearTimeout(this.budgetTimer);
    this.saveTimer = undefined;
    this.save();
  }

  get deliveredTotal(): number {
    return this.delivered;
  }

  get failedTotal(): number {
    return this.failed;
  }

  /** Free space in data_dir and whether new mail is taken; undefined without a disk watch (tests). */
  disk(): DiskStatus | undefined {
    return this.options.disk?.current();
  }

  upstream(name: string): UpstreamStatus | undefined {
    return this.upstreams.get(name);
  }

  snapshot(now = Date.now()): StatusSnapshot {
    const counts = queueCounts(this.options.db, now);
    const budgets = this.options.budgets;
    const upstreams = Object.fromEntries([...this.upstreams].map(([name, u]) => {
      const rate = budgets?.budget(name, now);
      return [name, rate ? { ...u, rate } : u];
    }));
    const disk = this.disk();
    const state = overallState([...this.upstreams.values()], counts);
    return {
      state: state === 'ok' && disk && !disk.accepting ? 'degraded' : state,
      queue: { queued: counts.queued + counts.delivering, deferred: counts.deferred, failed: counts.failed, oldest_age_s: counts.oldestAgeS },
      upstreams,
      delivered_total: this.delivered,
      failed_total: this.failed,
      version: this.options.version,
      uptime_s: Math.round((now - this.startedAt) / 1000),
      ...(disk && { disk: { ...disk } }),
    };
  }

  private onUpstream(e: UpstreamEvent): void {
    const current = this.upstreams.get(e.upstream);
    if (!current) return;
    const at = e.at.toISOString();
    const next_probe_at = e.nextProbeAt === undefined ? current.next_probe_at : (e.nextProbeAt?.toISOString() ?? null);
    const next: UpstreamStatus = e.ok
      ? { ...current, state: 'ok', last_ok: at, next_probe_at }
      : { ...current, state: e.problem ?? 'down', last_error: e.reply, last_error_at: at, hint: this.options.hints?.for(e.upstream, e.reply) ?? null, next_probe_at };
    this.upstreams.set(e.upstream, next);
    const changed = next.state !== current.state || next.last_error !== current.last_error || next.next_probe_at !== current.next_probe_at;
    if (changed || e.ok) this.emit('change');
    if (next.state !== current.state || next.last_error !== current.last_error) this.saveSoon(SAVE_AFTER_MS);
    else if (next.last_ok !== current.last_ok) this.saveSoon(Math.max(SAVE_AFTER_MS, this.lastSaved + SAVE_SUCCESS_EVERY_MS - Date.now()));
  }

  /** A new sign-in is stored: not known to work until a delivery says so, but no longer refused. */
  private onReconnected(upstream: string): void {
    const current = this.upstreams.get(upstream);
    if (!current) return;
    this.upstreams.set(upstream, { ...current, state: 'unknown', hint: null, next_probe_at: null });
    this.emit('change');
    this.saveSoon(SAVE_AFTER_MS);
  }

  private budgetChangesLater(): void {
    clearTimeout(this.budgetTimer);
    this.budgetTimer = setTimeout(() => this.emit('change'), 61_000);
    this.budgetTimer.unref();
  }

  private saveSoon(delayMs: number): void {
    const dueAt = Date.now() + delayMs;
    if (this.saveTimer && this.saveDueAt <= dueAt) return;
    clearTimeout(this.saveTimer);
    this.saveDueAt = dueAt;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.save();
    }, delayMs);
    this.saveTimer.unref();
  }

  private save(): void {
    const upstreams = Object.fromEntries([...this.upstreams].map(([name, u]) => [name, { state: u.state, last_ok: u.last_ok, last_error: u.last_error, last_error_at: u.last_error_at }]));
    try {
      this.memory.saveUpstreams(upstreams);
      this.lastSaved = Date.now();
    } catch {
      // A full disk or a closed spool: what is shown stays right; the next change tries again.
    }
  }
}

const STATES: ReadonlySet<string> = new Set<UpstreamState>(['unknown', 'ok', 'down', 'auth_failed', 'quota', 'clock', 'ehlo_rejected']);

function isUpstreamState(state: string): state is UpstreamState {
  return STATES.has(state);
}

const FAILING: ReadonlySet<UpstreamState> = new Set(['down', 'auth_failed', 'quota', 'clock', 'ehlo_rejected']);

/** down: no upstream works; degraded: one fails, or mail waits or has failed; ok otherwise. */
function overallState(upstreams: UpstreamStatus[], counts: { deferred: number; failed: number }): StatusSnapshot['state'] {
  const failing = upstreams.filter((u) => FAILING.has(u.state)).length;
  if (upstreams.length > 0 && failing === upstreams.length) return 'down';
  if (failing > 0 || counts.deferred > 0 || counts.failed > 0) return 'degraded';
  return 'ok';
}
