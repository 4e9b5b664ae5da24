import { createHash, randomBytes } from 'node:crypto';
import nodemailer from 'nodemailer';
import { afterEach, describe, expect, it } from 'vitest';
import { SmtpTalk, startIngress, type RunningIngress } from './ingress-harness.js';

let running: RunningIngress | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

function transport(port: number) {
  return nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
}

async function waitFor(condition: () => boolean, ms = 3000): Promise<void> {
  for (const until = Date.now() + ms; !condition(); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > until) throw new Error('condition not met in time');
  }
}

function queuedId(reply: string): number {
  const m = /^250 2\.0\.0 Ok: queued as (\d+)$/.exec(reply);
  expect(m, `reply was: ${reply}`).not.toBeNull();
  return Number(m![1]);
}

describe('SMTP ingress: accepting', () => {
  it('greets with the hostname and stores a message from nodemailer before answering 250', async () => {
    running = await startIngress();
    const { talk, greeting } = await SmtpTalk.open(running.port);
    expect(greeting).toBe('220 relaybox.test ESMTP relaybox');
    await talk.quit();

    const info = await transport(running.port).sendMail({
      from: 'scanner@office.test',
      to: ['ops@example.com', 'boss@example.com'],
      subject: 'Scan ✓ from floor 2',
      text: 'page one\n.leading dot\n',
    });
    const id = queuedId(info.response);
    const row = running.db.prepare('SELECT mail_from, client, subject, state, size, auth_user FROM messages WHERE id = ?').get(id) as Record<string, unknown>;
    expect(row).toMatchObject({ mail_from: 'scanner@office.test', subject: 'Scan ✓ from floor 2', state: 'queued', auth_user: null });
    expect(row.client).toMatch(/^127\.0\.0\.1 \(.+\)$/);
    const rcpts = running.db.prepare('SELECT rcpt FROM recipients WHERE message_id = ? ORDER BY rcpt').pluck().all(id);
    expect(rcpts).toEqual(['boss@example.com', 'ops@example.com']);
    const body = await running.bodyOf(id);
    expect(body.length).toBe(row.size);
    expect(body.toString()).toContain('page one\r\n.leading dot\r\n');
  });

  it('stores the exact bytes sent, dot-unstuffed, with the HELO name in the client string', async () => {
    running = await startIngress();
    const { talk } = await SmtpTalk.open(running.port);
    expect(await talk.cmd('EHLO scanner-3f')).toMatch(/^250-relaybox\.test/);
    const data = 'Subject: =?ISO-8859-1?Q?Rechnung_f=FCr_M=E4rz?=\r\nFrom: a@office.test\r\n\r\n..one dot\r\nbody\r\n';
    const id = queuedId(await talk.sendRaw(`${data}.\r\n`));
    await talk.quit();
    expect((await running.bodyOf(id)).toString('latin1')).toBe(data.replace('..one', '.one'));
    const row = running.db.prepare('SELECT subject, client FROM messages WHERE id = ?').get(id) as Record<string, unknown>;
    expect(row).toEqual({ subject: 'Rechnung für März', client: '127.0.0.1 (scanner-3f)' });
  });

  it('says a message is on its way at MAIL FROM, not when a device merely connects', async () => {
    let transactions = 0;
    running = await startIngress({}, undefined, { onTransaction: () => transactions++ });
    const { talk } = await SmtpTalk.open(running.port);
    expect(await talk.cmd('EHLO monitor')).toMatch(/^250/);
    expect(await talk.cmd('NOOP')).toMatch(/^250/);
    expect(transactions).toBe(0); // a port check that never sends mail starts nothing
    expect(await talk.cmd('MAIL FROM:<scanner@office.test>')).toMatch(/^250/);
    expect(transactions).toBe(1);
    await talk.quit();
  });

  it('turns bare LF line endings into CRLF and leaves CRLF lines alone', async () => {
    running = await startIngress();
    const { talk } = await SmtpTalk.open(running.port);
    await talk.cmd('HELO mfp');
    const id = queuedId(await talk.sendRaw('Subject: lf only\nX-Device: mfp\n\nline1\nline2\r\nline3\n\r\n.\r\n'));
    await talk.quit();
    expect((await running.bodyOf(id)).toString()).toBe('Subject: lf only\r\nX-Device: mfp\r\n\r\nline1\r\nline2\r\nline3\r\n\r\n');
    expect(running.db.prepare('SELECT subject FROM messages WHERE id = ?').pluck().get(id)).toBe('lf only');
  });

  it('streams a 30 MB scan into the spool in chunks and keeps it byte-identical', async () => {
    running = await startIngress();
    const base64 = randomBytes(22 * 1024 * 1024).toString('base64');
    const lines = ['From: scanner@office.test', 'To: ops@example.com', 'Subject: big scan', 'Content-Transfer-Encoding: base64', ''];
    for (let i = 0; i < base64.length; i += 76) lines.push(base64.slice(i, i + 76));
    const raw = Buffer.from(`${lines.join('\r\n')}\r\n`);
    expect(raw.length).toBeGreaterThan(30_000_000);

    const info = await transport(running.port).sendMail({ envelope: { from: 'scanner@office.test', to: ['ops@example.com'] }, raw });
    const id = queuedId(info.response);
    const stored = await running.bodyOf(id);
    expect(stored.length).toBe(raw.length);
    expect(createHash('sha256').update(stored).digest('hex')).toBe(createHash('sha256').update(raw).digest('hex'));
    // Spilled to body_chunks as it arrived rather than held whole and written at the end.
    expect(running.count('body_chunks')).toBeGreaterThan(100);
  }, 60_000);

  it('takes ten devices sending at once, each message intact under its own id', async () => {
    running = await startIngress();
    const raws = Array.from({ length: 10 }, (_, i) => Buffer.from(`Subject: scan ${i}\r\n\r\n${`${i}`.repeat(76)}\r\n`.repeat(5000)));
    const sends = raws.map((raw, i) =>
      transport(running!.port).sendMail({ envelope: { from: `dev${i}@office.test`, to: ['ops@example.com'] }, raw }),
    );
    const ids = (await Promise.all(sends)).map((info) => queuedId(info.response));
    expect(new Set(ids).size).toBe(10);
    for (const [i, id] of ids.entries()) {
      const { mail_from, subject } = running.db.prepare('SELECT mail_from, subject FROM messages WHERE id = ?').get(id) as Record<string, string>;
      expect([mail_from, subject]).toEqual([`dev${i}@office.test`, `scan ${i}`]);
      expect((await running.bodyOf(id)).equals(raws[i]!)).toBe(true);
    }
  });
});

describe('SMTP ingress: refusing', () => {
  it('refuses an oversized message with 552 after DATA and keeps nothing of it', async () => {
    running = await startIngress({ max_message_bytes: 600_000 });
    const { talk } = await SmtpTalk.open(running.port);
    expect(await talk.cmd('EHLO mfp')).toContain('SIZE 600000');
    // Big enough that the writer has spilled chunks to the spool before the limit is crossed.
    const big = `Subject: too big\r\n\r\n${'x'.repeat(998)}\r\n`.repeat(1000);
    expect(await talk.sendRaw(`${big}.\r\n`)).toBe('552 5.3.4 Message size exceeds fixed maximum message size');
    expect(running.count('messages')).toBe(0);
    expect(running.count('body_chunks')).toBe(0);

    // A declared size over the limit is refused up front.
    expect(await talk.cmd('MAIL FROM:<a@office.test> SIZE=700000')).toMatch(/^552 /);
    // The session stays usable: a message within the limit is accepted.
    queuedId(await talk.sendRaw('Subject: small\r\n\r\nok\r\n.\r\n'));
    await talk.quit();
    expect(running.count('messages')).toBe(1);
  });

  it('answers 5xx on connect to a client outside allow_networks and stores nothing', async () => {
    running = await startIngress({ allow_networks: ['10.0.0.0/8'] });
    const { talk, greeting } = await SmtpTalk.open(running.port);
    expect(greeting).toMatch(/^554 5\.7\.1 .*127\.0\.0\.1.* not allowed$/);
    expect(await talk.cmd('EHLO sneaky')).toBe('(closed)');
    await expect(transport(running.port).sendMail({ from: 'a@x.test', to: 'b@example.com', text: 'hi' })).rejects.toMatchObject({ responseCode: 554 });
    expect(running.count('messages')).toBe(0);
  });

  it('refuses recipients outside allow_recipient_domains with 550', async () => {
    running = await startIngress({ allow_recipient_domains: ['example.com'] });
    const { talk } = await SmtpTalk.open(running.port);
    await talk.cmd('EHLO mfp');
    expect(await talk.cmd('MAIL FROM:<scanner@office.test>')).toMatch(/^250/);
    expect(await talk.cmd('RCPT TO:<someone@elsewhere.test>')).toBe('550 5.7.1 relaying to elsewhere.test denied');
    expect(await talk.cmd('RCPT TO:<Ops@Example.COM>')).toMatch(/^250/);
    await talk.quit();
  });

  it('answers 451, never 250, when the spool cannot commit, and leaves no partial body', async () => {
    running = await startIngress();
    running.spool.accept = async () => {
      throw new Error('SQLITE_FULL: database or disk is full');
    };
    const { talk } = await SmtpTalk.open(running.port);
    await talk.cmd('EHLO mfp');
    const body = `Subject: doomed\r\n\r\n${'y'.repeat(998)}\r\n`.repeat(600);
    expect(await talk.sendRaw(`${body}.\r\n`)).toBe('451 4.3.0 Temporary failure, try again');
    await talk.quit();
    expect(running.count('messages')).toBe(0);
    expect(running.count('body_chunks')).toBe(0);
  });

  it('keeps nothing of a message whose client hangs up during DATA', async () => {
    running = await startIngress();
    const { talk } = await SmtpTalk.open(running.port);
    await talk.cmd('EHLO flaky');
    await talk.cmd('MAIL FROM:<a@office.test>');
    await talk.cmd('RCPT TO:<b@example.com>');
    expect(await talk.cmd('DATA')).toMatch(/^354 /);
    talk.socket.write(`Subject: cut\r\n\r\n${'z'.repeat(998)}\r\n`.repeat(600));
    await waitFor(() => running!.count('body_chunks') > 0);
    talk.socket.destroy();
    await waitFor(() => running!.count('messages') === 0 && running!.count('body_chunks') === 0);
  });

  it('stop() hangs up on idle clients instead of waiting for them', async () => {
    running = await startIngress();
    const { talk } = await SmtpTalk.open(running.port);
    await talk.cmd('EHLO idle-device');
    const started = Date.now();
    await running.ingress.stop();
    expect(Date.now() - started).toBeLessThan(900);
    expect(await talk.next()).toMatch(/^421 /);
  });
});
