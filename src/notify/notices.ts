import type { Logger } from 'pino';
import { formatDuration } from '../config/duration.js';
import { domainAllowed, type NoticeEvent, type NotifyConfig } from '../config/notify.js';
import type { MessageEvent, UpstreamEvent } from '../events.js';
import type { Feature, FeatureContext } from '../feature.js';
import { messageHead } from '../spool/log.js';
import { NoticeMemory, type NoticeState } from '../spool/noticeMemory.js';
import { composeDsn, headerBlock } from './dsn.js';
import { renderAuthFailed, renderDigest, renderDisk } from './render.js';
import { NoticeSender } from './sender.js';

/** A digest names at most this many messages of each kind; the rest it counts. */
const DIGEST_MAX_MESSAGES = 100;
/** setTimeout's limit (~24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** After a notice could not be spooled (a full disk), its digest is tried again this much later. */
const RETRY_MS = 60_000;
const MB = 1024 * 1024;

/** What an upstream event means for notices; `clock` and `ehlo_rejected` read as down. */
function upstreamKind(e: UpstreamEvent): string {
  if (e.ok) return 'ok';
  if (e.problem === 'auth_failed' || e.problem === 'quota') return e.problem;
  return 'upstream_down';
}

/**
 * `notify:` — tells the admin by mail. `auth_failed` and `disk` go at once; failed messages,
 * upstreams down or over quota and stuck mail wait for the digest window (`notify.digest`) to
 * end and go out as one mail, so that at most one digest leaves per window whatever happens.
 * Each upstream or disk trouble is noticed once when it starts, not per attempt. What the next
 * digest will say is in the spool (the log, the queue, and NoticeMemory's cursors), so a crash
 * neither loses a digest nor sends one failure twice over.
 */
export class MailNotices implements Feature {
  readonly name = 'notify';
  private readonly notify: NotifyConfig;
  private readonly memory: NoticeMemory;
  private readonly sender: NoticeSender;
  private readonly logger: Logger;
  private state!: NoticeState;
  private flushTimer: NodeJS.Timeout | undefined;
  private stuckTimer: NodeJS.Timeout | undefined;
  /** One at a time: the state is read and changed by one step only. */
  private chain: Promise<unknown> = Promise.resolve();
  private stopping = false;

  constructor(private readonly context: FeatureContext) {
    this.notify = context.config.notify!;
    this.logger = context.logger;
    this.memory = new NoticeMemory(context.spool.db);
    this.sender = new NoticeSender({ config: context.config, spool: context.spool, logger: context.logger });
  }

  async start(): Promise<void> {
    this.state = this.memory.load();
    this.memory.save(this.state);
    const { events, status } = this.context;
    events.on('message', this.onMessage);
    events.on('upstream', this.onUpstream);
    status.on('change', this.onStatus);
    if (this.wants('queue_stuck')) {
      const every = Math.min(Math.max(this.notify.stuck_after / 4, 1000), 300_000);
      this.stuckTimer = setInterval(() => this.serial(() => this.checkStuck()), every);
      this.stuckTimer.unref();
    }
    if (this.state.flushAt !== null) this.arm(this.state.flushAt);
    this.onStatus();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const { events, status } = this.context;
    events.off('message', this.onMessage);
    events.off('upstream', this.onUpstream);
    status.off('change', this.onStatus);
    clearTimeout(this.flushTimer);
    clearInterval(this.stuckTimer);
    await this.chain;
  }

  private wants(event: NoticeEvent): boolean {
    return this.notify.events.includes(event);
  }

  private readonly onMessage = (e: MessageEvent): void => {
    if (e.event === 'failed') this.serial(() => this.failed(e));
  };

  private readonly onUpstream = (e: UpstreamEvent): void => {
    this.serial(() => this.upstream(e));
  };

  private readonly onStatus = (): void => {
    const disk = this.context.status.disk();
    if (disk && !disk.accepting !== this.state.diskFull) this.serial(() => this.disk());
  };

  private async failed(e: MessageEvent): Promise<void> {
    const message = this.memory.message(e.id);
    // Never a notice about a notice (or a DSN): no loops.
    if (!message || message.isNotice) return;
    if (this.wants('failed')) this.openWindow();
    if (this.notify.bounce_to_sender && message.mailFrom !== '' && domainAllowed(message.mailFrom, this.context.config.smtp.allow_recipient_domains)) {
      const head = messageHead(this.context.spool.db, e.id);
      const bytes = await composeDsn({
        hostname: this.context.config.hostname,
        words: this.sender.render.words,
        to: message.mailFrom,
        recipients: e.recipients,
        reply: e.reply ?? '550 5.0.0 delivery failed',
        arrivedAt: new Date(message.receivedAt),
        header: head && headerBlock(head),
      });
      await this.sender.dsn(bytes, message.mailFrom);
    }
  }

  /** An upstream's trouble is noticed when it starts; its next attempts say nothing new. */
  private async upstream(e: UpstreamEvent): Promise<void> {
    const kind = upstreamKind(e);
    if ((this.state.upstreams[e.upstream] ?? 'ok') === kind) return;
    this.state.upstreams[e.upstream] = kind;
    if (kind === 'quota' || kind === 'upstream_down') {
      if (this.wants(kind)) {
        this.state.notes = this.state.notes.filter((n) => n.upstream !== e.upstream || n.kind !== kind);
        this.state.notes.push({ upstream: e.upstream, kind, reply: e.reply, at: e.at.getTime() });
        this.openWindow();
      }
    }
    this.memory.save(this.state);
    if (kind === 'auth_failed' && this.wants('auth_failed')) {
      await this.sender.notice(renderAuthFailed(this.sender.render, e.upstream, e.reply), this.otherUpstream([e.upstream]));
    }
  }

  private async disk(): Promise<void> {
    const disk = this.context.status.disk();
    if (!disk || !disk.accepting === this.state.diskFull) return;
    this.state.diskFull = !disk.accepting;
    this.memory.save(this.state);
    if (!disk.accepting && this.wants('disk')) {
      const mb = (bytes: number) => `${Math.floor(bytes / MB)} MB`;
      await this.sender.notice(renderDisk(this.sender.render, mb(disk.free_bytes), mb(disk.min_free_bytes)), null);
    }
  }

  private async checkStuck(): Promise<void> {
    const stuck = this.memory.stuckSince(this.state.stuckId, Date.now() - this.notify.stuck_after, 1);
    if (stuck.length > 0) this.openWindow();
  }

  /** The first thing to digest opens the window; its digest goes out when the window ends. */
  private openWindow(): void {
    if (this.state.flushAt !== null) return;
    this.state.flushAt = Date.now() + this.notify.digest;
    this.memory.save(this.state);
    this.arm(this.state.flushAt);
  }

  private arm(at: number): void {
    if (this.stopping) return;
    clearTimeout(this.flushTimer);
    this.flushTimer = setTimeout(() => this.serial(() => this.flush()), Math.min(Math.max(0, at - Date.now()), MAX_TIMER_MS));
    this.flushTimer.unref();
  }

  private async flush(): Promise<void> {
    const { flushAt } = this.state;
    if (flushAt === null) return;
    if (flushAt > Date.now()) return this.arm(flushAt); // a long wait taken in steps
    const failed = this.memory.failedSince(this.state.failedLogId, DIGEST_MAX_MESSAGES);
    const listed = this.wants('failed') ? failed : { messages: [], total: 0 };
    const stuck = this.wants('queue_stuck') ? this.memory.stuckSince(this.state.stuckId, Date.now() - this.notify.stuck_after, DIGEST_MAX_MESSAGES) : [];
    const notes = this.state.notes;
    if (listed.total > 0 || stuck.length > 0 || notes.length > 0) {
      const text = renderDigest(this.sender.render, {
        failed: listed.messages,
        failedTotal: listed.total,
        stuck,
        stuckAfter: formatDuration(this.notify.stuck_after),
        notes,
      });
      // Spooled before the cursors move: a crash in between sends this digest twice, never zero times.
      await this.sender.notice(text, this.otherUpstream(notes.map((n) => n.upstream)));
    }
    this.state = {
      ...this.state,
      failedLogId: failed.lastLogId,
      stuckId: stuck.length > 0 ? stuck[stuck.length - 1]!.id : this.state.stuckId,
      notes: [],
      flushAt: null,
    };
    this.memory.save(this.state);
  }

  /**
   * Through an upstream that is not in trouble when one is: a notice about a failing upstream
   * must not wait behind it. null (the usual route) when none is in trouble or all are.
   */
  private otherUpstream(failing: string[]): string | null {
    const names = this.context.config.upstreams.map((u) => u.name);
    const troubled = new Set(names.filter((n) => failing.includes(n) || (this.state.upstreams[n] ?? 'ok') !== 'ok'));
    if (troubled.size === 0) return null;
    return names.find((n) => !troubled.has(n)) ?? null;
  }

  private serial(work: () => Promise<void>): void {
    this.chain = this.chain.then(work).catch((err: unknown) => {
      this.logger.error({ err }, 'notice not spooled');
      // The digest's cursors did not move: it goes out on the next try.
      if (this.state.flushAt !== null && this.state.flushAt <= Date.now()) this.arm(Date.now() + RETRY_MS);
    });
  }
}
