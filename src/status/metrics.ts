import { statSync } from 'node:fs';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AuthEvent, MessageEvent, RelayEvents } from '../events.js';
import { spoolPath, type SpoolDb } from '../spool/db.js';
import { queueCounts } from '../spool/log.js';
import type { WindowBudget } from '../spool/sentWindows.js';
import type { StatusTracker, UpstreamState } from '../health/tracker.js';

const UPSTREAM_STATES: UpstreamState[] = ['unknown', 'ok', 'down', 'auth_failed', 'quota', 'ehlo_rejected'];
const WAITING_STATES = ['queued', 'delivering', 'deferred', 'failed'] as const;

export interface MetricsOptions {
  events: RelayEvents;
  status: StatusTracker;
  db: SpoolDb;
  dataDir: string;
  version: string;
}

/**
 * The Prometheus view of relaybox. Counters and the duration histogram follow the event bus;
 * everything the spool or the tracker already knows (messages by state, the oldest waiting
 * message, upstream states, spool size) is read at scrape time, so it can never drift. One
 * registry per instance: several relays in one process (tests) do not share numbers.
 */
export class RelayMetrics {
  readonly registry = new Registry();
  private readonly onMessage: (e: MessageEvent) => void;
  private readonly onAuth: (e: AuthEvent) => void;

  constructor(private readonly options: MetricsOptions) {
    const registers = [this.registry];
    const { db, status, dataDir } = options;

    new Gauge({ name: 'relaybox_info', help: 'Always 1; the version is a label', labelNames: ['version'], registers }).set({ version: options.version }, 1);

    new Gauge({
      name: 'relaybox_messages',
      help: 'Messages in the spool that still need something: queued, delivering, deferred, failed',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = queueCounts(db);
        for (const state of WAITING_STATES) this.set({ state }, counts[state]);
      },
    });
    new Gauge({
      name: 'relaybox_oldest_queued_age_seconds',
      help: 'Age of the oldest message still waiting to be delivered (0 when none waits)',
      registers,
      collect() {
        this.set(queueCounts(db).oldestAgeS);
      },
    });
    new Gauge({
      name: 'relaybox_upstream_up',
      help: '1 while the upstream last worked, 0 while it fails; absent until it was first tried',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const [name, u] of Object.entries(status.snapshot().upstreams)) if (u.state !== 'unknown') this.set({ upstream: name }, u.state === 'ok' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'relaybox_upstream_state',
      help: "The upstream's state: 1 for the current one (unknown, ok, down, auth_failed, quota, ehlo_rejected)",
      labelNames: ['upstream', 'state'],
      registers,
      collect() {
        for (const [name, u] of Object.entries(status.snapshot().upstreams)) {
          for (const state of UPSTREAM_STATES) this.set({ upstream: name, state }, u.state === state ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'relaybox_upstream_next_probe_timestamp_seconds',
      help: 'While deliveries skip an upstream that failed before MAIL FROM (circuit breaker open): when one tries it again',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const [name, u] of Object.entries(status.snapshot().upstreams)) if (u.next_probe_at) this.set({ upstream: name }, Date.parse(u.next_probe_at) / 1000);
      },
    });
    // Sending limits (`upstreams[].rate`): one series per window that has a limit.
    const rateGauge = (name: string, help: string, pick: (w: WindowBudget) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['upstream', 'window'],
        registers,
        collect() {
          this.reset();
          for (const [upstream, u] of Object.entries(status.snapshot().upstreams)) {
            for (const [window, w] of Object.entries(u.rate ?? {})) if (w) this.set({ upstream, window }, pick(w));
          }
        },
      });
    rateGauge('relaybox_upstream_rate_remaining', 'What is left of an upstream sending limit in its rolling window (per_minute, per_hour, per_day, recipients_per_day)', (w) => w.remaining);
    rateGauge('relaybox_upstream_rate_limit', "An upstream's sending limit per rolling window (upstreams[].rate, or its preset)", (w) => w.limit);
    new Gauge({
      name: 'relaybox_spool_size_bytes',
      help: 'Size of the spool database and its write-ahead log on disk',
      registers,
      collect() {
        this.set(spoolBytes(dataDir));
      },
    });

    new Gauge({
      name: 'relaybox_disk_free_bytes',
      help: 'Free space for the spool (data_dir): what the filesystem offers, plus pages the spool freed',
      registers,
      collect() {
        const disk = status.disk();
        if (disk) this.set(disk.free_bytes);
      },
    });
    new Gauge({
      name: 'relaybox_accepting_mail',
      help: '1 while new mail is taken; 0 while free space is below smtp.min_free_bytes (452 4.3.1)',
      registers,
      collect() {
        const disk = status.disk();
        this.set(disk && !disk.accepting ? 0 : 1);
      },
    });

    const accepted = new Counter({ name: 'relaybox_messages_accepted_total', help: 'Messages accepted into the spool (SMTP, API, alerts)', registers });
    const outcome = (name: string, help: string) => new Counter({ name, help, labelNames: ['upstream'], registers });
    const delivered = outcome('relaybox_messages_delivered_total', 'Deliveries that succeeded (one per message and upstream answer)');
    const deferred = outcome('relaybox_messages_deferred_total', 'Deliveries that failed temporarily and will be retried');
    const failed = outcome('relaybox_messages_failed_total', 'Deliveries that failed for good (a person is told)');
    const dropped = new Counter({ name: 'relaybox_messages_dropped_total', help: 'Messages a person dropped', registers });
    const duration = new Histogram({
      name: 'relaybox_delivery_duration_seconds',
      help: 'How long one delivery attempt took, by upstream and outcome',
      labelNames: ['upstream', 'outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });

    this.onMessage = (e) => {
      // relaybox's own verdicts (give_up_after passed) carry no upstream.
      const upstream = e.upstream ?? '';
      if (e.event === 'accepted') accepted.inc();
      else if (e.event === 'dropped') dropped.inc();
      else {
        ({ delivered, deferred, failed })[e.event].inc({ upstream });
        if (e.durationMs !== undefined && e.upstream) duration.observe({ upstream, outcome: e.event }, e.durationMs / 1000);
      }
    };
    options.events.on('message', this.onMessage);

    const authFailures = new Counter({ name: 'relaybox_auth_failures_total', help: 'Failed logins (smtp: SMTP AUTH, http: the admin token)', labelNames: ['service'], registers });
    const lockouts = new Counter({ name: 'relaybox_auth_lockouts_total', help: 'Client addresses locked out after too many failed logins', labelNames: ['service'], registers });
    for (const service of ['smtp', 'http']) {
      authFailures.inc({ service }, 0);
      lockouts.inc({ service }, 0);
    }
    this.onAuth = (e) => (e.event === 'auth_locked' ? lockouts : authFailures).inc({ service: e.service });
    options.events.on('auth', this.onAuth);
    collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition format, collected now. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    this.options.events.off('message', this.onMessage);
    this.options.events.off('auth', this.onAuth);
    this.registry.clear();
  }
}

function spoolBytes(dataDir: string): number {
  const db = spoolPath(dataDir);
  let total = 0;
  for (const file of [db, `${db}-wal`]) {
    try {
      total += statSync(file).size;
    } catch {
      // no WAL right after a checkpoint: nothing to add
    }
  }
  return total;
}
