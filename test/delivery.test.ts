import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { MessageEvent } from '../src/events.js';
import { getMessage, listMessages } from '../src/spool/log.js';
import { relayConfig, sendMail, startRelay, waitFor } from './helpers/relay.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

function smtpUpstream(name: string, port: number) {
  return { name, type: 'smtp', host: '127.0.0.1', port, security: 'none' };
}

function queuedId({ response }: { response: string }): number {
  return Number(/queued as (\d+)/.exec(response)![1]);
}

async function upstream(options = {}) {
  const up = await TestUpstream.start(options);
  return up;
}

describe('delivery through a real SMTP upstream', () => {
  it('accepts, spools and delivers the bytes it received', async () => {
    const up = await upstream();
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtpUpstream('primary', up.port)] }));
    // Well-formed (Message-ID, Date, one From), so the fix-ups leave it byte for byte.
    const raw =
      'From: scanner@example.com\r\nTo: office@example.com\r\nSubject: Scan 0001\r\nDate: Fri, 05 Jan 2024 09:30:00 +0000\r\n' +
      'Message-ID: <scan-0001@example.com>\r\n\r\nPDF attached\r\n';
    const { response } = await sendMail(port, { to: ['office@example.com'], raw });
    expect(response).toMatch(/^250 .*queued as (\d+)/);
    const id = Number(/queued as (\d+)/.exec(response)![1]);
    await up.waitForMessages(1);
    expect(up.messages[0]).toMatchObject({ from: 'scanner@example.com', to: ['office@example.com'] });
    expect(up.messages[0]!.raw!.toString()).toBe(raw);
    const detail = await waitFor(() => {
      const d = getMessage(app.spool.db, id);
      return d?.state === 'delivered' && d;
    });
    expect(detail.history.map((h) => h.event)).toEqual(['accepted', 'delivered']);
    expect(detail.history[1]).toMatchObject({ upstream: 'primary' });
  });

  it('delivers to the good recipients once when one is refused, and keeps the refusal', async () => {
    const up = await upstream();
    up.rejectRecipient('nobody@example.com', 550, '5.1.1 The email account that you tried to reach does not exist');
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtpUpstream('primary', up.port)] }));
    await sendMail(port, { to: ['a@example.com', 'nobody@example.com', 'b@example.com'] });
    const detail = await waitFor(() => {
      const d = listMessages(app.spool.db)[0];
      return d && d.state === 'failed' && getMessage(app.spool.db, d.id);
    });
    expect(up.messages).toHaveLength(1);
    expect(up.messages[0]!.to.sort()).toEqual(['a@example.com', 'b@example.com']);
    const byRcpt = Object.fromEntries(detail.recipients.map((r) => [r.rcpt, r]));
    expect(byRcpt['a@example.com']!.state).toBe('delivered');
    expect(byRcpt['nobody@example.com']).toMatchObject({ state: 'failed', upstream: 'primary' });
    expect(byRcpt['nobody@example.com']!.reply).toMatch(/^550 5\.1\.1 The email account/);
    await new Promise((r) => setTimeout(r, 600)); // longer than the retry interval: nothing is resent
    expect(up.messages).toHaveLength(1);
  });

  it('defers on a temporary failure and delivers on the retry', async () => {
    const up = await upstream();
    up.failData(451, '4.3.0 Mail server temporarily rejected message', 1);
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtpUpstream('primary', up.port)] }));
    await sendMail(port, { to: ['a@example.com'] });
    await up.waitForMessages(1, 10_000);
    const detail = await waitFor(() => {
      const d = getMessage(app.spool.db, listMessages(app.spool.db)[0]!.id);
      return d?.state === 'delivered' && d;
    });
    expect(detail.attempts).toBe(2);
    expect(detail.history.map((h) => h.event)).toEqual(['accepted', 'deferred', 'delivered']);
    expect(detail.history[1]!.reply).toMatch(/^451 4\.3\.0 Mail server temporarily rejected/);
    expect(up.messages).toHaveLength(1);
  });

  it('fails a permanently refused message and keeps the upstream reply', async () => {
    const up = await upstream();
    up.failData(550, '5.7.1 Messages missing a valid Message-ID header are not accepted');
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtpUpstream('primary', up.port)] }));
    await sendMail(port, { to: ['a@example.com'] });
    const detail = await waitFor(() => {
      const d = listMessages(app.spool.db)[0];
      return d?.state === 'failed' && d;
    });
    expect(detail.attempts).toBe(1);
    expect(detail.lastReply).toMatch(/^550 5\.7\.1 Messages missing a valid Message-ID/);
  });

  it('fails over to the second upstream in the same round', async () => {
    const down = await upstream();
    await down.stop();
    const second = await upstream();
    const { app, port } = await startRelay(
      relayConfig(tempDir(), { upstreams: [smtpUpstream('primary', down.port), smtpUpstream('backup', second.port)] }),
    );
    await sendMail(port, { to: ['a@example.com'] });
    await second.waitForMessages(1);
    const detail = await waitFor(() => {
      const d = getMessage(app.spool.db, listMessages(app.spool.db)[0]!.id);
      return d?.state === 'delivered' && d;
    });
    expect(detail.attempts).toBe(1);
    expect(detail.history.map((h) => [h.event, h.upstream])).toEqual([
      ['accepted', null],
      ['deferred', 'primary'],
      ['delivered', 'backup'],
    ]);
    expect(detail.history[1]!.reply).toMatch(/ECONNREFUSED|connect/i);
  });

  it('gives up after give_up_after, not before, having retried, and says why', async () => {
    const down = await upstream();
    await down.stop();
    const { app, port } = await startRelay(
      relayConfig(tempDir(), {
        upstreams: [smtpUpstream('primary', down.port)],
        delivery: { retry: { first: '100ms', max: '200ms', give_up_after: '2s' } },
      }),
    );
    const events: MessageEvent[] = [];
    app.events.on('message', (e) => events.push(e));
    const eventOf = (id: number, ...names: MessageEvent['event'][]) => waitFor(() => events.find((e) => e.id === id && names.includes(e.event)), 60_000, `${names} of ${id}`);
    // give_up_after counts from acceptance, and the delivery thread starts with the first MAIL FROM:
    // on a busy box its start alone can take the whole window. A first message's outcome (deferred,
    // or failed when that start took over 2 s) says that the thread runs, and it stays for 30 s
    // idle: the window of the message under test opens with the thread already there.
    const warmUp = queuedId(await sendMail(port, { to: ['warm-up@example.com'] }));
    await eventOf(warmUp, 'deferred', 'failed');

    const id = queuedId(await sendMail(port, { to: ['a@example.com'] }));
    const failed = await eventOf(id, 'failed');
    const accepted = await eventOf(id, 'accepted');
    const mine = events.filter((e) => e.id === id).map((e) => e.event);
    expect(mine[0]).toBe('accepted');
    expect(mine.indexOf('deferred')).toBeGreaterThan(0); // retried at least once before it gave up
    expect(mine.at(-1)).toBe('failed');
    expect(failed.at.getTime() - accepted.at.getTime()).toBeGreaterThanOrEqual(2000);
    expect(failed.reply).toMatch(/^gave up after 2s: .*(ECONNREFUSED|connect)/i);
    const detail = await waitFor(() => getMessage(app.spool.db, id)?.state === 'failed' && getMessage(app.spool.db, id));
    expect(detail.attempts).toBeGreaterThanOrEqual(2);
    expect(detail.history.at(-1)!.reply).toMatch(/^gave up after 2s: /);
  }, 90_000);

  it('relays a 30 MB scan intact', async () => {
    const up = await upstream({ keepRaw: false });
    const { app, port } = await startRelay(relayConfig(tempDir(), { upstreams: [smtpUpstream('primary', up.port)] }));
    const base64 = randomBytes(22 * 1024 * 1024).toString('base64').replace(/.{76}/g, '$&\r\n');
    const raw = Buffer.from(`From: scanner@example.com\r\nTo: a@example.com\r\nSubject: big scan\r\nDate: Fri, 05 Jan 2024 09:30:00 +0000\r\nMessage-ID: <big@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64}\r\n`);
    expect(raw.length).toBeGreaterThan(30_000_000);
    await sendMail(port, { to: ['a@example.com'], raw });
    await up.waitForMessages(1, 60_000);
    expect(up.messages[0]!.sha256).toBe(createHash('sha256').update(raw).digest('hex'));
    await waitFor(() => listMessages(app.spool.db)[0]?.state === 'delivered');
    expect(app.spool.db.prepare('SELECT count(*) FROM body_chunks').pluck().get()).toBe(0);
  }, 120_000);
});
