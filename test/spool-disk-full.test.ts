import { describe, expect, it, onTestFinished } from 'vitest';
import { RelayEvents } from '../src/events.js';
import { openSpool } from '../src/spool/db.js';
import { SpoolStore } from '../src/spool/store.js';
import { fillDisk, isRoot, smallDataDir, useSmallDisk } from './helpers/smallDisk.js';
import { rmSync } from 'node:fs';

const delivered = { retryAt: 0, records: [{ event: 'delivered' as const, upstream: 'up', recipients: ['a@example.com'], reply: '250 ok', durationMs: 1 }] };

describe.skipIf(!isRoot)('the spool on a full disk (20 MB tmpfs)', () => {
  useSmallDisk();

  it('keeps an outcome it has no room for, claims nothing meanwhile, and writes it once there is room', async () => {
    const dataDir = smallDataDir();
    {
      const store = new SpoolStore(openSpool(dataDir));
      const body = store.receive();
      body.write(Buffer.from('Subject: one\r\n\r\nhello\r\n'));
      await store.accept(body, { mailFrom: 's@example.com', recipients: ['a@example.com'] });
      store.close(); // a clean close removes the write-ahead log: the next write must grow a new one
    }
    const events = new RelayEvents();
    const seen: string[] = [];
    events.on('message', (e) => seen.push(e.event));
    const store = new SpoolStore(openSpool(dataDir), events);
    onTestFinished(() => store.close());
    const filler = fillDisk();

    const [message] = store.claimDue(Date.now(), 10); // its claim cannot reach the disk: no crash (no unhandled rejection)
    expect(message?.id).toBeDefined();
    const recorded = store.recordOutcome(message!.id, delivered);
    let done = false;
    void recorded.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 1500));
    expect(done).toBe(false); // waiting for room, not thrown away
    expect(store.claimDue(Date.now(), 10)).toEqual([]); // and the message is not sent again meanwhile
    expect(seen).toEqual([]);

    rmSync(filler);
    await recorded;
    expect(seen).toEqual(['delivered']);
    expect(store.db.prepare('SELECT state FROM messages WHERE id = ?').pluck().get(message!.id)).toBe('delivered');
  });
});
