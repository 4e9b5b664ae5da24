import { Readable } from 'node:stream';
import type { SpoolDb } from './db.js';
import type { SpoolRows } from './rows.js';
import { withoutSync } from './db.js';
import { noteStreamedBytes } from '../memory.js';
import type { MemoryBudget } from '../memoryBudget.js';

/** Bodies up to this size are stored inline in one row; bigger ones go to body_chunks in pieces this size. */
export const CHUNK_BYTES = 256 * 1024;

/**
 * Collects a message body as it streams in. Memory holds at most one chunk: once a body outgrows
 * it, chunks go to the spool under a `receiving` row, which `recoverInterrupted` removes if the
 * process dies before the message is committed. With a memory budget (many uploads at once), a
 * body that finds the budget spent skips memory: each piece goes to body_chunks as it arrives.
 */
export class BodyWriter {
  size = 0;
  /** A small body's pieces, as they came; most messages never need more. */
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  /** One chunk-sized buffer, reused for every chunk of a large body: no garbage per chunk. */
  private slab: Buffer | null = null;
  private slabUsed = 0;
  private seq = 0;
  /** The `receiving` row once the body has spilled to body_chunks. */
  id: number | null = null;
  /** The whole body once `takeInline` has gathered it (small bodies only). */
  inline: Buffer | null = null;
  private budget: MemoryBudget | null = null;
  /** Bytes of this body counted in the budget. */
  private held = 0;
  /** The budget was spent: every piece goes to body_chunks as it arrives. */
  private direct = false;

  constructor(private readonly db: SpoolDb) {}

  /** Counts what this body holds in memory against `budget` (shared by every upload). */
  limitMemory(budget: MemoryBudget): void {
    this.budget = budget;
  }

  write(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.direct) return this.writeDirect(chunk);
    if (!this.slab && this.bufferedBytes + chunk.length < CHUNK_BYTES) {
      if (!this.hold(this.bufferedBytes + chunk.length)) return this.writeDirect(chunk);
      this.buffered.push(chunk);
      this.bufferedBytes += chunk.length;
      return;
    }
    if (!this.slab) {
      if (!this.hold(CHUNK_BYTES)) return this.writeDirect(chunk);
      this.slab = Buffer.allocUnsafe(CHUNK_BYTES);
      for (const piece of this.buffered) this.slabUsed += piece.copy(this.slab, this.slabUsed);
      this.buffered = [];
      this.bufferedBytes = 0;
    }
    for (let offset = 0; offset < chunk.length; ) {
      const copied = chunk.copy(this.slab, this.slabUsed, offset);
      this.slabUsed += copied;
      offset += copied;
      if (this.slabUsed === CHUNK_BYTES) this.spill();
    }
  }

  /** The whole body when it never left memory; null when it lives in body_chunks. */
  takeInline(): Buffer | null {
    if (this.id !== null) return null;
    this.inline = Buffer.concat(this.buffered);
    this.buffered = [];
    this.bufferedBytes = 0;
    this.hold(0);
    return this.inline;
  }

  /** Writes what is still buffered (inside the caller's transaction). */
  flushRemainder(): void {
    if (this.id !== null && this.slab && this.slabUsed > 0) this.insertChunk(this.slab.subarray(0, this.slabUsed));
    this.slab = null;
    this.slabUsed = 0;
    this.hold(0);
  }

  /** The first `bytes` of the body so far, wherever they are (the header block, for its Subject). */
  head(bytes: number): Buffer {
    const pieces: Buffer[] = [];
    let have = 0;
    if (this.id !== null) {
      const rows = this.db.prepare('SELECT data FROM body_chunks WHERE message_id = ? ORDER BY seq').pluck();
      for (const data of rows.iterate(this.id) as Iterable<Buffer>) {
        pieces.push(data);
        have += data.length;
        if (have >= bytes) break;
      }
    }
    if (this.slab) pieces.push(this.slab.subarray(0, this.slabUsed));
    pieces.push(...this.buffered);
    const all = Buffer.concat(pieces);
    return all.length > bytes ? Buffer.from(all.subarray(0, bytes)) : all;
  }

  /** Forgets the body: nothing of it stays in memory or on disk. */
  discard(): void {
    this.buffered = [];
    this.bufferedBytes = 0;
    this.slab = null;
    this.slabUsed = 0;
    this.hold(0);
    if (this.id === null) return;
    const id = this.id;
    withoutSync(this.db, () =>
      this.db.transaction(() => {
        this.db.prepare('DELETE FROM body_chunks WHERE message_id = ?').run(id);
        this.db.prepare('DELETE FROM messages WHERE id = ?').run(id);
      })(),
    );
    this.id = null; // only now: when the delete fails (a full disk), the caller knows what to delete later
  }

  /** Holds `bytes` of memory in all (taking or giving back the difference); false when the budget has no room. */
  private hold(bytes: number): boolean {
    if (!this.budget) return true;
    if (bytes > this.held && !this.budget.tryTake(bytes - this.held)) return false;
    if (bytes < this.held) this.budget.give(this.held - bytes);
    this.held = bytes;
    return true;
  }

  /** Over budget: what memory holds of this body goes out, and so does every piece from now on. */
  private writeDirect(chunk: Buffer): void {
    if (!this.direct) {
      this.direct = true;
      const held = this.slab ? [this.slab.subarray(0, this.slabUsed)] : this.buffered;
      const first = Buffer.concat([...held, chunk]);
      this.buffered = [];
      this.bufferedBytes = 0;
      this.slab = null;
      this.slabUsed = 0;
      this.hold(0);
      chunk = first;
    }
    if (chunk.length > 0) withoutSync(this.db, () => this.insertChunk(chunk));
  }

  private spill(): void {
    // Chunks are not fsynced one by one: the commit that answers 250 syncs the WAL they sit in.
    withoutSync(this.db, () => {
      this.insertChunk(this.slab!); // SQLite copies the bytes, so the slab is free again
    });
    this.slabUsed = 0;
  }

  private insertChunk(data: Buffer): void {
    if (this.id === null) this.id = insertReceivingRow(this.db);
    this.db.prepare('INSERT INTO body_chunks (message_id, seq, data) VALUES (?, ?, ?)').run(this.id, this.seq++, data);
  }
}

/** The row a body spilling to body_chunks belongs to, until the message is committed. */
function insertReceivingRow(db: SpoolDb): number {
  const now = Date.now();
  const info = db
    .prepare(`INSERT INTO messages (received_at, queued_at, mail_from, size, state, updated_at) VALUES (?, ?, '', 0, 'receiving', ?)`)
    .run(now, now, now);
  return Number(info.lastInsertRowid);
}

/** The stored body as a stream, one chunk in memory at a time. */
export function readBody(rows: SpoolRows, id: number): Readable {
  const inline = rows.sql('SELECT body FROM messages WHERE id = ?').pluck().get(id) as Buffer | null | undefined;
  if (inline) return Readable.from([inline], { objectMode: false });
  const chunk = rows.sql('SELECT data FROM body_chunks WHERE message_id = ? AND seq = ?').pluck();
  function* chunks(): Generator<Buffer> {
    for (let seq = 0; ; seq++) {
      const data = chunk.get(id, seq) as Buffer | undefined;
      if (!data) return;
      noteStreamedBytes(data.length);
      yield data;
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}
