import { createHash, randomBytes } from 'node:crypto';
import { text } from 'node:stream/consumers';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { RelayEvents, type MessageEvent } from '../src/events.js';
import { CHUNK_BYTES } from '../src/spool/body.js';
import { openSpool, SCHEMA_VERSION } from '../src/spool/db.js';
import { getMessage, listMessages, queueCounts } from '../src/spool/log.js';
import { SpoolStore, type ClaimedMessage } from '../src/spool/store.js';
import { tempDir } from './helpers/tmp.js';

function open(dir = tempDir()) {
  const db = openSpool(dir);
  const events = new RelayEvents();
  const seen: MessageEvent[] = [];
  events.on('message', (e) => seen.push(e));
  return { dir, db, store: new SpoolStore(db, events), seen };
}

async function put(store: SpoolStore, body: Buffer | string, recipients = ['a@example.com']) {
  const writer = store.receive();
  writer.write(Buffer.from(body));
  return store.accept(writer, { mailFrom: 'scanner@example.com', recipients, subject: 'scan' });
}

describe('spool', () => {
  it('hands a message to delivery once, though it reach the delivering store twice (a scan, then its hand-over)', async () => {
    const dir = tempDir();
    const handedOver: ClaimedMessage[] = [];
    const ingress = new SpoolStore(openSpool(dir), undefined, { queued: (m) => handedOver.push(m) });
    const delivery = new SpoolStore(openSpool(dir));
    const id = await put(ingress, 'Subject: once\r\n\r\nhi\r\n');
    const [scanned] = delivery.claimDue(Date.now(), 10); // a scan saw it before the hand-over arrived
    expect(scanned!.id).toBe(id);
    await delivery.recordOutcome(id, { retryAt: 0, records: [{ event: 'delivered', upstream: 'up', recipients: ['a@example.com'], reply: '250 ok', durationMs: 1 }] });
    delivery.offer(handedOver[0]!); // the hand-over, late
    expect(delivery.claimDue(Date.now(), 10)).toEqual([]);

    const again = await put(ingress, 'Subject: twice\r\n\r\nhi\r\n');
    delivery.offer(handedOver[1]!);
    expect(delivery.claimDue(Date.now(), 10).map((m) => m.id)).toEqual([again]); // from memory, body and all
    expect(Buffer.from(handedOver[1]!.body!).toString()).toBe('Subject: twice\r\n\r\nhi\r\n');
    ingress.close();
    delivery.close();
  });

  it('keeps an accepted message with its envelope and exact bytes, and announces it', async () => {
    const { store, seen, db } = open();
    const id = await put(store, 'Subject: scan\r\n\r\nhello\r\n', ['a@example.com', 'b@example.com']);
    const [claimed] = store.claimDue(Date.now(), 10);
    expect(claimed).toMatchObject({ id, mailFrom: 'scanner@example.com', recipients: ['a@example.com', 'b@example.com'] });
    expect(await text(store.body(id))).toBe('Subject: scan\r\n\r\nhello\r\n');
    expect(seen.map((e) => e.event)).toEqual(['accepted']);
    expect(store.claimDue(Date.now(), 10)).toEqual([]); // claimed once is claimed
    store.flush(); // the claim rides on the next commit
    expect(listMessages(db)[0]).toMatchObject({ id, state: 'delivering', subject: 'scan' });
  });

  it('stores a body larger than a chunk in pieces and reads it back intact', async () => {
    const { store, db } = open();
    const body = randomBytes(CHUNK_BYTES * 3 + 12345);
    const writer = store.receive();
    for (let i = 0; i < body.length; i += 65536) writer.write(body.subarray(i, i + 65536));
    const id = await store.accept(writer, { mailFrom: 'a@b.c', recipients: ['x@y.z'] });
    const chunks = db.prepare('SELECT count(*) FROM body_chunks WHERE message_id = ?').pluck().get(id);
    expect(chunks).toBe(4);
    const back = await buffer(store.body(id));
    expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('leaves nothing behind of a body that was discarded', async () => {
    const { store, db } = open();
    const writer = store.receive();
    writer.write(randomBytes(CHUNK_BYTES * 2));
    writer.discard();
    expect(db.prepare('SELECT count(*) FROM messages').pluck().get()).toBe(0);
    expect(db.prepare('SELECT count(*) FROM body_chunks').pluck().get()).toBe(0);
  });

  it('gives every concurrent accept its own id in one group commit', async () => {
    const { store } = open();
    const ids = await Promise.all(Array.from({ length: 25 }, (_, i) => put(store, `n: ${i}\r\n\r\n`)));
    expect(new Set(ids).size).toBe(25);
    expect(store.claimDue(Date.now(), 100)).toHaveLength(25);
  });

  it('keeps per-recipient state: a refused recipient neither fails nor resends the others', async () => {
    const { store, db, seen } = open();
    const id = await put(store, 'x', ['ok@example.com', 'bad@example.com']);
    store.claimDue(Date.now(), 1);
    await store.recordOutcome(id, {
      retryAt: Date.now() + 60_000,
      records: [
        { event: 'delivered', upstream: 'up', recipients: ['ok@example.com'], reply: '250 2.0.0 OK', durationMs: 3 },
        { event: 'failed', upstream: 'up', recipients: ['bad@example.com'], reply: '550 5.1.1 no such user', durationMs: 3 },
      ],
    });
    const detail = getMessage(db, id)!;
    expect(detail.state).toBe('failed');
    expect(detail.recipients).toEqual([
      { rcpt: 'bad@example.com', state: 'failed', upstream: 'up', reply: '550 5.1.1 no such user' },
      { rcpt: 'ok@example.com', state: 'delivered', upstream: 'up', reply: '250 2.0.0 OK' },
    ]);
    expect(seen.map((e) => e.event)).toEqual(['accepted', 'delivered', 'failed']);
    // A person retries: only the failed recipient is tried again, and the body is still there.
    expect(store.retry(id)).toBe(true);
    const [again] = store.claimDue(Date.now(), 1);
    expect(again!.recipients).toEqual(['bad@example.com']);
    expect(await text(store.body(id))).toBe('x');
  });

  it('defers with a due time and counts the queue', async () => {
    const { store, db } = open();
    const id = await put(store, 'x');
    store.claimDue(Date.now(), 1);
    const retryAt = Date.now() + 60_000;
    await store.recordOutcome(id, { retryAt, records: [{ event: 'deferred', upstream: 'up', recipients: ['a@example.com'], reply: '451 4.3.0 later', durationMs: 1 }] });
    expect(getMessage(db, id)).toMatchObject({ state: 'deferred', attempts: 1, nextAttemptAt: retryAt, lastReply: '451 4.3.0 later' });
    expect(store.claimDue(Date.now(), 10)).toHaveLength(0);
    expect(store.nextDueAt()).toBe(retryAt);
    expect(queueCounts(db)).toMatchObject({ queued: 0, deferred: 1, failed: 0 });
  });

  it('frees the body once delivered', async () => {
    const { store, db } = open();
    const id = await put(store, 'x');
    store.claimDue(Date.now(), 1);
    await store.recordOutcome(id, { retryAt: 0, records: [{ event: 'delivered', upstream: 'up', recipients: ['a@example.com'], reply: '250 ok', durationMs: 1 }] });
    expect(db.prepare('SELECT body FROM messages WHERE id = ?').pluck().get(id)).toBeNull();
    expect(getMessage(db, id)!.state).toBe('delivered');
  });

  it('after a crash puts delivering messages back and removes half-received bodies', async () => {
    const dir = tempDir();
    const first = open(dir);
    const id = await put(first.store, 'x');
    first.store.claimDue(Date.now(), 1);
    first.store.flush();
    first.store.receive().write(randomBytes(CHUNK_BYTES + 1)); // spilled, never committed
    first.db.close();

    const second = open(dir);
    expect(second.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect(second.store.recoverInterrupted()).toBe(1);
    expect(second.db.prepare(`SELECT count(*) FROM messages WHERE state = 'receiving'`).pluck().get()).toBe(0);
    expect(second.db.prepare('SELECT count(*) FROM body_chunks').pluck().get()).toBe(0);
    expect(second.store.claimDue(Date.now(), 10).map((m) => m.id)).toEqual([id]);
  });

  it('drops a waiting message but keeps it in the log', async () => {
    const { store, db, seen } = open();
    const id = await put(store, 'x');
    expect(store.drop(id)).toBe(true);
    expect(store.drop(id)).toBe(false);
    const detail = getMessage(db, id)!;
    expect(detail.state).toBe('dropped');
    expect(detail.history.map((h) => h.event)).toEqual(['accepted', 'dropped']);
    expect(seen.at(-1)).toMatchObject({ id, event: 'dropped' });
    expect(store.claimDue(Date.now(), 10)).toHaveLength(0);
  });
});

describe('spool housekeeping', () => {
  it('prunes finished messages and their log, and keeps what still waits', async () => {
    const { store, db } = open();
    const done = await put(store, 'x');
    const waiting = await put(store, 'y');
    store.claimDue(Date.now(), 1);
    await store.recordOutcome(done, { retryAt: 0, records: [{ event: 'delivered', upstream: 'up', recipients: ['a@example.com'], reply: '250 ok', durationMs: 1 }] });
    expect(store.prune(Date.now() + 1000)).toBe(1);
    expect(getMessage(db, done)).toBeNull();
    expect(db.prepare('SELECT count(*) FROM log WHERE message_id = ?').pluck().get(done)).toBe(0);
    expect(getMessage(db, waiting)!.history.map((h) => h.event)).toEqual(['accepted']);
  });
});
