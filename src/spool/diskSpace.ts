import { EventEmitter } from 'node:events';
import { statfsSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import type { SpoolDb } from './db.js';
import { makeRoom } from './diskFull.js';
import { makeReserve, reserveBytes, reserveSize } from './reserve.js';

const MB = 1024 * 1024;
/** Looked at this often without mail too: status and logs notice a disk filling (or freed) by something else. */
const WATCH_MS = 5_000;
/** After a write failed for want of space, mail is refused at least this long (no retry storm). */
const HOLD_AFTER_FULL_MS = 5_000;
/** Free space this many times min_free_bytes needs no second look (freed pages, the WAL) per message. */
const AMPLE_FACTOR = 2;
/** Once refusing, mail is taken again only above min_free by this share: no flapping at the edge. */
const RESUME_MARGIN = 0.1;

/** `disk` in the status snapshot: whether new mail fits, and why not. */
export interface DiskStatus {
  /**
   * Free for relaybox on data_dir's filesystem, plus pages the spool has freed (delivered bodies:
   * SQLite reuses them before its file grows; the file does not shrink) while the write-ahead log
   * has room (its own file, or the filesystem's) to carry new mail into them.
   */
  free_bytes: number;
  min_free_bytes: number;
  accepting: boolean;
  /** Why new mail is refused; null while it is taken. */
  reason: string | null;
}

/** smtp.min_free_bytes unset: the larger of 64 MB and 1.5 × max_message_bytes, but at most 10% of the filesystem (a small card works). */
export function defaultMinFreeBytes(maxMessageBytes: number, filesystemBytes: number): number {
  return Math.min(Math.max(64 * MB, Math.ceil(1.5 * maxMessageBytes)), Math.floor(filesystemBytes / 10));
}

export interface DiskSpaceOptions {
  dataDir: string;
  /** The main thread's spool connection: its free pages count as room. */
  db: SpoolDb;
  /** smtp.min_free_bytes; undefined = defaultMinFreeBytes. */
  minFreeBytes?: number;
  maxMessageBytes: number;
  logger: Logger;
}

/**
 * Whether the spool has room for new mail (Postfix's queue_minfree). Below min_free_bytes the
 * ingress answers 452 4.3.1 while delivery goes on and frees space; mail is taken again by itself
 * once there is room. One warning when this starts, one info line when it ends; `change` then too.
 */
export class DiskSpace extends EventEmitter<{ change: [DiskStatus] }> {
  readonly minFreeBytes: number;
  private readonly reserveBytes: number;
  private status: DiskStatus;
  private fullUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly freePages;
  private readonly pageSize: number;

  constructor(private readonly options: DiskSpaceOptions) {
    super();
    const fs = statfsSync(options.dataDir);
    this.minFreeBytes = options.minFreeBytes ?? defaultMinFreeBytes(options.maxMessageBytes, fs.blocks * fs.bsize);
    this.reserveBytes = reserveBytes(fs.blocks * fs.bsize);
    this.freePages = options.db.prepare('PRAGMA freelist_count').pluck();
    this.pageSize = options.db.pragma('page_size', { simple: true }) as number;
    this.status = { free_bytes: 0, min_free_bytes: this.minFreeBytes, accepting: true, reason: null };
    this.refresh();
  }

  start(): void {
    this.timer ??= setInterval(() => this.refresh(), WATCH_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * The state now: each MAIL FROM looks afresh (a cached figure let a burst of scans overshoot
   * min_free, or miss a disk filled a moment ago). While the filesystem alone has ample room that
   * is one statfs; the spool's freed pages are counted only when they could matter.
   */
  current(): DiskStatus {
    this.refresh({ quick: true });
    return this.status;
  }

  /** Whether a message of `bytes` (MAIL FROM's SIZE=) still leaves min_free_bytes. */
  fits(bytes: number): boolean {
    const status = this.current();
    return status.accepting && status.free_bytes - bytes >= this.minFreeBytes;
  }

  /** A spool write failed for want of space, whatever statfs said: refuse mail for a while. */
  sawFull(): void {
    makeRoom(this.options.db);
    this.fullUntil = Date.now() + HOLD_AFTER_FULL_MS;
    this.refresh();
  }

  /** `quick`: a look for one MAIL FROM, which skips the extras while the filesystem has ample room. */
  private refresh(options: { quick?: boolean } = {}): void {
    const now = Date.now();
    let free: number;
    try {
      const fs = statfsSync(this.options.dataDir);
      const fsFree = fs.bavail * fs.bsize;
      const ample = options.quick && this.status.accepting && fsFree >= AMPLE_FACTOR * this.minFreeBytes;
      // Freed pages take new mail only while the write-ahead log (reused from its start after each
      // checkpoint, ~1 MB between them) has room to carry it there.
      free = ample ? fsFree : fsFree + (fsFree + this.walBytes() >= this.reserveBytes ? this.reusableBytes() : 0);
    } catch (err) {
      this.options.logger.debug({ err }, 'cannot read the free space of data_dir');
      return;
    }
    const was = this.status;
    const held = now < this.fullUntil;
    const needed = was.accepting ? this.minFreeBytes : Math.ceil(this.minFreeBytes * (1 + RESUME_MARGIN));
    const accepting = !held && free >= needed;
    const reason = accepting
      ? null
      : held
        ? `the spool could not write: the disk is full (${mb(free)} free)`
        : `only ${mb(free)} free in ${this.options.dataDir} (smtp.min_free_bytes: ${mb(this.minFreeBytes)})`;
    this.status = { free_bytes: free, min_free_bytes: this.minFreeBytes, accepting, reason };
    // Given up on a full disk (reserve.ts): made again once it does not take the room mail needs.
    if (!options.quick && accepting && free - this.reserveBytes >= this.minFreeBytes && reserveSize(this.options.dataDir) < this.reserveBytes) {
      makeReserve(this.options.dataDir, this.reserveBytes);
    }
    if (was.accepting === accepting) return;
    const fields = { free_bytes: free, min_free_bytes: this.minFreeBytes, data_dir: this.options.dataDir };
    if (accepting) this.options.logger.info(fields, 'disk has room again: taking new mail');
    else this.options.logger.warn({ ...fields, reason }, 'disk nearly full: new mail is refused with 452 4.3.1 until there is room; delivery goes on');
    this.emit('change', this.status);
  }

  private walBytes(): number {
    try {
      return statSync(`${this.options.db.name}-wal`).size;
    } catch {
      return 0;
    }
  }

  /** Pages the spool freed are filled again before its file grows: room for mail as much as the filesystem's. */
  private reusableBytes(): number {
    if (!this.options.db.open) return 0;
    try {
      return (this.freePages.get() as number) * this.pageSize;
    } catch {
      return 0;
    }
  }
}

function mb(bytes: number): string {
  return `${(bytes / MB).toFixed(1)} MB`;
}
