import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config/load.js';
import { RelayEvents, type AuthEvent } from '../src/events.js';
import { hashPassword } from '../src/ingress/passwords.js';
import { messageHead } from '../src/spool/log.js';
import { SmtpTalk, startIngress, type RunningIngress } from './ingress-harness.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const plain = (password: string) => `AUTH PLAIN ${b64(`\0scanner\0${password}`)}`;

let running: RunningIngress | undefined;
let users: { username: string; password_hash: string }[];
const talks: SmtpTalk[] = [];
beforeAll(async () => {
  users = [{ username: 'scanner', password_hash: await hashPassword('s3cret!') }];
});
afterEach(async () => {
  for (const talk of talks.splice(0)) talk.socket.destroy();
  await running?.close();
  running = undefined;
});

async function open(localAddress = '127.0.0.1'): Promise<{ talk: SmtpTalk; greeting: string }> {
  const opened = await SmtpTalk.open(running!.port, localAddress);
  talks.push(opened.talk);
  return opened;
}

/** EHLO and `n` wrong passwords on one connection; the replies. */
async function guess(talk: SmtpTalk, n: number): Promise<string[]> {
  await talk.cmd('EHLO guesser');
  const replies: string[] = [];
  for (let i = 0; i < n; i++) replies.push(await talk.cmd(plain(`wrong-${i}`)));
  return replies;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  if (!check()) throw new Error(`never happened: ${what}`);
}

describe('SMTP ingress: password guessing', () => {
  it('locks an address out after 5 failed AUTHs: 421 4.7.0 and hang up; other addresses still log in', async () => {
    const events = new RelayEvents();
    const seen: AuthEvent[] = [];
    events.on('auth', (e) => seen.push(e));
    running = await startIngress({ auth: { required: true, users } }, undefined, { events });

    const { talk } = await open();
    const replies = await guess(talk, 5);
    expect(replies.slice(0, 4)).toEqual(Array(4).fill('535 5.7.8 Authentication credentials invalid'));
    expect(replies[4]).toMatch(/^421 4\.7\.0 Too many failed logins from this address; try again in (59|60) s$/);
    expect(await talk.next()).toBe('(closed)');

    // Every session must log in, so the locked-out address is refused at once.
    const again = await open();
    expect(again.greeting).toMatch(/^421 4\.7\.0 Too many failed logins/);

    const other = await open('127.0.0.2');
    expect(other.greeting).toMatch(/^220 /);
    await other.talk.cmd('EHLO scanner');
    expect(await other.talk.cmd(plain('s3cret!'))).toMatch(/^235 /);
    expect(await other.talk.sendRaw('Subject: still works\r\n\r\nhi\r\n.\r\n')).toMatch(/^250 /);

    expect(seen.filter((e) => e.event === 'auth_failed').map((e) => e.client)).toEqual(Array(5).fill('127.0.0.1'));
    const locked = seen.filter((e) => e.event === 'auth_locked');
    expect(locked).toHaveLength(1);
    expect(locked[0]).toMatchObject({ service: 'smtp', client: '127.0.0.1' });
    const lockMs = locked[0]!.until!.getTime() - locked[0]!.at.getTime();
    expect(lockMs).toBe(60_000);
  });

  it('refuses even the right password during the lockout, without checking it', async () => {
    running = await startIngress({ auth: { required: false, users } });
    const { talk } = await open();
    expect((await guess(talk, 5))[4]).toMatch(/^421 4\.7\.0 /);

    // AUTH is optional here: the connection is taken, the login is not.
    const again = await open();
    expect(again.greeting).toMatch(/^220 /);
    await again.talk.cmd('EHLO scanner');
    expect(await again.talk.cmd(plain('s3cret!'))).toMatch(/^421 4\.7\.0 Too many failed logins/);
    expect(await again.talk.next()).toBe('(closed)');
  });

  it('a good login forgets earlier failures', async () => {
    running = await startIngress({ auth: { required: true, users } });
    const { talk } = await open();
    expect(await guess(talk, 4)).not.toContainEqual(expect.stringMatching(/^421/));
    expect(await talk.cmd(plain('s3cret!'))).toMatch(/^235 /);
    const next = await open();
    expect((await guess(next.talk, 4)).every((r) => r.startsWith('535'))).toBe(true);
  });
});

describe('SMTP ingress: connection limits', () => {
  it('max_connections_per_ip: 421 4.7.0 beyond it; another address is still served, and the address again once one closes', async () => {
    running = await startIngress({ max_connections_per_ip: 2 });
    const first = await open();
    const second = await open();
    expect([first.greeting, second.greeting]).toEqual([expect.stringMatching(/^220 /), expect.stringMatching(/^220 /)]);
    const third = await open();
    expect(third.greeting).toBe('421 4.7.0 Too many connections from 127.0.0.1, try again later');
    expect(await third.talk.next()).toBe('(closed)');

    const other = await open('127.0.0.2');
    expect(other.greeting).toMatch(/^220 /);
    await other.talk.cmd('EHLO other');
    expect(await other.talk.sendRaw('Subject: served\r\n\r\nhi\r\n.\r\n')).toMatch(/^250 /);

    await first.talk.quit();
    // The server counts the session out when it sees the close; until then 421 is right.
    let greeting = '';
    for (let i = 0; i < 100 && !greeting.startsWith('220'); i++) {
      const retry = await open();
      greeting = retry.greeting;
      retry.talk.socket.destroy();
    }
    expect(greeting).toMatch(/^220 /);
  });

  it('max_connections: 421 4.7.0 for the next client, whatever its address', async () => {
    running = await startIngress({ max_connections: 2 });
    expect((await open('127.0.0.1')).greeting).toMatch(/^220 /);
    expect((await open('127.0.0.2')).greeting).toMatch(/^220 /);
    const third = await open('127.0.0.3');
    expect(third.greeting).toBe('421 4.7.0 Too many connections, try again later');
  });
});

describe('SMTP ingress: stalled sessions cannot lock devices out', () => {
  it('with every session taken, the one silent longest is closed (421 4.4.2) to let a new client in', async () => {
    running = await startIngress({ max_connections: 2 }, undefined, { evictSilentAfterMs: 300 });
    const staller = (await open('127.0.0.1')).talk;
    await staller.cmd('EHLO staller');
    await staller.cmd('MAIL FROM:<a@office.test>');
    await staller.cmd('RCPT TO:<b@example.com>');
    expect(await staller.cmd('DATA')).toMatch(/^354 /);
    staller.socket.write('Subject: half\r\n\r\nthe first half, and then nothing\r\n');
    const idle = (await open('127.0.0.2')).talk;
    expect(await idle.cmd('EHLO idle')).toMatch(/^250/);

    // Refused while both have spoken recently; let in once one has been silent long enough.
    let greeting = '';
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && !greeting.startsWith('220'); ) {
      const next = await open('127.0.0.3');
      greeting = next.greeting;
      if (greeting.startsWith('220')) await next.talk.cmd('EHLO newcomer');
      else expect(greeting).toBe('421 4.7.0 Too many connections, try again later');
    }
    expect(greeting).toMatch(/^220 /);
    expect(await staller.next()).toBe('421 4.4.2 Closing a silent connection to make room for another client');
    expect(await staller.next()).toBe('(closed)');
    expect(await idle.sendRaw('Subject: still here\r\n\r\nhi\r\n.\r\n')).toMatch(/^250 /);
    await until(() => running!.count('messages') === 1, 'only the finished message in the spool');
  });
});

describe('SMTP ingress: timeouts', () => {
  it('a DATA that stalls past smtp.timeouts.data is cut with 421 and nothing of it stays', async () => {
    running = await startIngress({ timeouts: { command: '5m', data: '1s' }, max_buffered_bytes: 0 });
    const { talk } = await open();
    await talk.cmd('EHLO staller');
    await talk.cmd('MAIL FROM:<a@office.test>');
    await talk.cmd('RCPT TO:<b@example.com>');
    expect(await talk.cmd('DATA')).toMatch(/^354 /);
    talk.socket.write(`Subject: stalled\r\n\r\n${'x'.repeat(70_000)}\r\n`);
    await until(() => running!.count('body_chunks') > 0, 'the body written to the spool as it arrives (budget 0)');
    const started = Date.now();
    expect(await talk.next()).toMatch(/^421 /);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(await talk.next()).toBe('(closed)');
    await until(() => running!.count('messages') === 0 && running!.count('body_chunks') === 0, 'the partial body removed');
  });

  it('an idle session is closed after smtp.timeouts.command', async () => {
    running = await startIngress({ timeouts: { command: '1s', data: '5m' } });
    const { talk } = await open();
    expect(await talk.cmd('EHLO idler')).toMatch(/^250/);
    expect(await talk.next()).toMatch(/^421 /);
  });
});

describe('SMTP ingress: memory budget', () => {
  it('with the budget spent, bodies go to the spool as they arrive and arrive whole, header and all', async () => {
    running = await startIngress({ max_buffered_bytes: 0 });
    const { talk } = await open();
    await talk.cmd('EHLO big');
    await talk.cmd('MAIL FROM:<a@office.test>');
    await talk.cmd('RCPT TO:<b@example.com>');
    expect(await talk.cmd('DATA')).toMatch(/^354 /);
    // The header block arrives in two pieces, so it is stored in two chunks.
    const first = 'X-First: 1\r\nX-Padding: padding\r\n';
    const rest = `Subject: spooled as it came\r\n\r\n${'line of text\r\n'.repeat(20_000)}`;
    talk.socket.write(first);
    await until(() => running!.count('body_chunks') > 0, 'the first piece stored before the rest came');
    talk.socket.write(`${rest}.\r\n`);
    const reply = await talk.next();
    expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as \d+$/);
    const id = Number(/as (\d+)/.exec(reply)![1]);
    expect((await running.bodyOf(id)).toString()).toBe(first + rest);
    expect(running.db.prepare('SELECT subject FROM messages WHERE id = ?').pluck().get(id)).toBe('spooled as it came');
    expect(messageHead(running.db, id)!.toString()).toContain('Subject: spooled as it came\r\n\r\n');
  });
});

describe('config: the limits', () => {
  const config = (smtp: Record<string, unknown>) => validateConfig({ hostname: 'relaybox.test', data_dir: '/tmp/x', smtp, upstreams: [{ name: 'o', type: 'file', dir: '/tmp/x/o' }] });

  it('has the defaults of the issue, and names the key of a bad value', () => {
    const { smtp } = config({});
    expect(smtp).toMatchObject({ max_connections: 100, max_connections_per_ip: 20, max_buffered_bytes: 33_554_432, timeouts: { command: 300_000, data: 300_000 } });
    expect(() => config({ timeouts: { data: '0s' } })).toThrow(/smtp\.timeouts\.data: expected a duration longer than 0/);
    expect(() => config({ timeouts: { idle: '1m' } })).toThrow(/smtp\.timeouts/);
    expect(() => config({ max_connections: 0 })).toThrow(/smtp\.max_connections/);
  });
});
