import nodemailer from 'nodemailer';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../src/ingress/passwords.js';
import { configProblems, FILE_UPSTREAM } from './helpers/config.js';
import { capturedLog, SmtpTalk, startIngress, startTls, type RunningIngress } from './ingress-harness.js';

// Issue 13, item 4: devices with old settings — a Gmail login where relaybox has no users, and
// "SSL off, authentication on" — and AUTH offered only where it will be taken.

const b64 = (text: string) => Buffer.from(text).toString('base64');
const ENCRYPTION_REQUIRED = '538 5.7.11 Encryption required for requested authentication mechanism';

let running: RunningIngress | undefined;
let users: { username: string; password_hash: string }[];
beforeAll(async () => {
  users = [{ username: 'scanner', password_hash: await hashPassword('s3cret!') }];
});
afterEach(async () => {
  await running?.close();
  running = undefined;
});

/** A device as nodemailer plays it: plain SMTP (no STARTTLS), with a login. */
function plainDevice(port: number, auth: { user: string; pass: string }) {
  return nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, auth });
}

describe('AUTH without smtp.auth.users: any login is taken and ignored', () => {
  it('a device still set up with its Gmail login sends its mail; no SMTP user is recorded', async () => {
    const log = capturedLog();
    running = await startIngress({ tls: { mode: 'starttls' } }, undefined, { logger: log.logger });
    const info = await plainDevice(running.port, { user: 'scanner@gmail.example', pass: 'old app password' }).sendMail({
      from: 'scanner@office.test',
      to: 'ops@example.com',
      subject: 'scan',
      text: 'hi',
    });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as \d+$/);
    expect(running.db.prepare('SELECT auth_user FROM messages').pluck().all()).toEqual([null]);
    const noted = log.lines.filter((l) => String(l.msg).startsWith('smtp AUTH accepted and ignored'));
    expect(noted).toEqual([expect.objectContaining({ level: 30, address: '127.0.0.1', username: 'scanner@gmail.example', tls: false })]);
    expect(JSON.stringify(log.lines)).not.toContain('old app password');
  });

  it('offers AUTH PLAIN/LOGIN before and after STARTTLS, and notes each client address once', async () => {
    const log = capturedLog();
    running = await startIngress({ tls: { mode: 'starttls' } }, undefined, { logger: log.logger });
    const { talk } = await SmtpTalk.open(running.port);
    const ehlo = await talk.cmd('EHLO mfp');
    expect(ehlo).toContain('AUTH PLAIN LOGIN');
    expect(ehlo).toContain('STARTTLS');
    expect(await talk.cmd(`AUTH PLAIN ${b64('\0anyone\0anything')}`)).toMatch(/^235 /);
    expect(await talk.sendRaw('Subject: one\r\n\r\nhi\r\n.\r\n')).toMatch(/^250 2\.0\.0 Ok: queued/);
    await talk.quit();

    // The same device again, over TLS and with AUTH LOGIN: taken, not noted a second time.
    const again = await SmtpTalk.open(running.port);
    await again.talk.cmd('EHLO mfp');
    const secure = new SmtpTalk(await startTls(again.talk));
    expect(await secure.cmd('EHLO mfp')).toContain('AUTH PLAIN LOGIN');
    expect(await secure.cmd('AUTH LOGIN')).toBe('334 VXNlcm5hbWU6');
    expect(await secure.cmd(b64('anyone'))).toBe('334 UGFzc3dvcmQ6');
    expect(await secure.cmd(b64('anything'))).toMatch(/^235 /);
    await secure.quit();

    // Another device is noted.
    const other = await SmtpTalk.open(running.port, '127.0.0.2');
    await other.talk.cmd('EHLO nas');
    expect(await other.talk.cmd(`AUTH PLAIN ${b64('\0nas\0pw')}`)).toMatch(/^235 /);
    await other.talk.quit();
    const noted = log.lines.filter((l) => String(l.msg).startsWith('smtp AUTH accepted and ignored')).map((l) => l.address);
    expect(noted).toEqual(['127.0.0.1', '127.0.0.2']);
  });
});

describe('AUTH with users: offered only where it is taken', () => {
  it('not listed before STARTTLS, 538 5.7.11 if tried; listed and taken once TLS is up (implicit TLS: at once)', async () => {
    running = await startIngress({ tls: { mode: 'starttls' }, auth: { users } });
    const { talk } = await SmtpTalk.open(running.port);
    const ehlo = await talk.cmd('EHLO mfp');
    expect(ehlo).toContain('STARTTLS');
    expect(ehlo).not.toContain('AUTH');
    expect(await talk.cmd(`AUTH PLAIN ${b64('\0scanner\0s3cret!')}`)).toBe(ENCRYPTION_REQUIRED);
    expect(await talk.cmd('AUTH LOGIN')).toBe(ENCRYPTION_REQUIRED);
    const secure = new SmtpTalk(await startTls(talk));
    expect(await secure.cmd('EHLO mfp')).toContain('AUTH PLAIN LOGIN');
    expect(await secure.cmd(`AUTH PLAIN ${b64('\0scanner\0wrong')}`)).toBe('535 5.7.8 Authentication credentials invalid');
    expect(await secure.cmd(`AUTH PLAIN ${b64('\0scanner\0s3cret!')}`)).toMatch(/^235 /);
    expect(await secure.sendRaw('Subject: tls\r\n\r\nhi\r\n.\r\n')).toMatch(/^250 2\.0\.0 Ok: queued/);
    await secure.quit();
    expect(running.db.prepare('SELECT auth_user FROM messages').pluck().all()).toEqual(['scanner']);

    // Implicit TLS is TLS from the start: AUTH is listed at once.
    await running.close();
    running = await startIngress({ tls: { mode: 'implicit' }, auth: { users } });
    const info = await nodemailer
      .createTransport({ host: '127.0.0.1', port: running.port, secure: true, tls: { rejectUnauthorized: false }, auth: { user: 'scanner', pass: 's3cret!' } })
      .sendMail({ from: 'scanner@office.test', to: 'ops@example.com', subject: 'x', text: 'y' });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued/);
  });

  it('smtp.auth.allow_cleartext: true offers AUTH before STARTTLS and takes it there', async () => {
    running = await startIngress({ tls: { mode: 'starttls' }, auth: { users, allow_cleartext: true } });
    const { talk } = await SmtpTalk.open(running.port);
    const ehlo = await talk.cmd('EHLO mfp');
    expect(ehlo).toContain('AUTH PLAIN LOGIN');
    expect(ehlo).toContain('STARTTLS');
    await talk.quit();
    const info = await plainDevice(running.port, { user: 'scanner', pass: 's3cret!' }).sendMail({ from: 'scanner@office.test', to: 'ops@example.com', text: 'y' });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued/);
  });

  it('tls.mode none: AUTH in clear as before, with a warning at start unless allow_cleartext says it is meant', async () => {
    const log = capturedLog();
    running = await startIngress({ tls: { mode: 'none' }, auth: { users } }, undefined, { logger: log.logger });
    const info = await plainDevice(running.port, { user: 'scanner', pass: 's3cret!' }).sendMail({ from: 'scanner@office.test', to: 'ops@example.com', text: 'y' });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued/);
    const warning = expect.objectContaining({ level: 40, msg: expect.stringMatching(/^smtp AUTH passwords cross the network in clear: smtp\.tls\.mode is none/) });
    expect(log.lines).toContainEqual(warning);
    await running.close();

    const meant = capturedLog();
    running = await startIngress({ tls: { mode: 'none' }, auth: { users, allow_cleartext: true } }, undefined, { logger: meant.logger });
    expect(meant.lines).not.toContainEqual(warning);
  });

  it('names smtp.auth.allow_cleartext when false cannot hold (no TLS to wait for)', () => {
    const yaml = (allow: string) =>
      `smtp: { tls: { mode: none }, auth: { ${allow}users: [{ username: scanner, password_hash: "$scrypt$x" }] } }\n${FILE_UPSTREAM}`;
    expect(configProblems(yaml('allow_cleartext: false, '))).toEqual([
      'smtp.auth.allow_cleartext: false needs TLS, but smtp.tls.mode is none: set tls.mode to starttls or implicit, or remove allow_cleartext',
    ]);
    expect(configProblems(`smtp: { auth: { allow_cleartext: "no" } }\n${FILE_UPSTREAM}`)[0]).toMatch(/^smtp\.auth\.allow_cleartext: /);
  });
});
