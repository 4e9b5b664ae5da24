import { readFile, stat } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import nodemailer from 'nodemailer';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../src/ingress/passwords.js';
import { autoCertPaths } from '../src/config/tlsPaths.js';
import { SmtpTalk, startIngress, startTls, type RunningIngress } from './ingress-harness.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');

let running: RunningIngress | undefined;
let users: { username: string; password_hash: string }[];
beforeAll(async () => {
  users = [{ username: 'scanner', password_hash: await hashPassword('s3cret!') }];
});
afterEach(async () => {
  await running?.close();
  running = undefined;
});

describe('SMTP ingress: AUTH', () => {
  it('with auth required: 530 without AUTH, 535 for a bad password, 250 after a good one', async () => {
    running = await startIngress({ auth: { required: true, users } });
    const { talk } = await SmtpTalk.open(running.port);
    const ehlo = await talk.cmd('EHLO mfp');
    expect(ehlo).toContain('AUTH PLAIN LOGIN');
    expect(ehlo).not.toContain('STARTTLS');
    expect(await talk.cmd('MAIL FROM:<scanner@office.test>')).toBe('530 5.7.0 Authentication required');
    expect(await talk.cmd(`AUTH PLAIN ${b64('\0scanner\0wrong')}`)).toBe('535 5.7.8 Authentication credentials invalid');
    expect(await talk.cmd(`AUTH PLAIN ${b64('\0nobody\0s3cret!')}`)).toBe('535 5.7.8 Authentication credentials invalid');
    expect(await talk.cmd(`AUTH PLAIN ${b64('\0scanner\0s3cret!')}`)).toMatch(/^235 /);
    const reply = await talk.sendRaw('Subject: authed\r\n\r\nhi\r\n.\r\n');
    expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as \d+$/);
    await talk.quit();
    expect(running.db.prepare('SELECT auth_user FROM messages').pluck().all()).toEqual(['scanner']);
  });

  it('AUTH LOGIN uses the customary prompts Xerox devices expect', async () => {
    running = await startIngress({ auth: { required: true, users } });
    const { talk } = await SmtpTalk.open(running.port);
    await talk.cmd('EHLO xerox');
    expect(await talk.cmd('AUTH LOGIN')).toBe('334 VXNlcm5hbWU6');
    expect(await talk.cmd(b64('scanner'))).toBe('334 UGFzc3dvcmQ6');
    expect(await talk.cmd(b64('s3cret!'))).toMatch(/^235 /);
    await talk.quit();
  });

  it('nodemailer as a device: good credentials are accepted, bad ones get 535', async () => {
    running = await startIngress({ auth: { required: true, users } });
    const send = (pass: string) =>
      nodemailer
        .createTransport({ host: '127.0.0.1', port: running!.port, secure: false, ignoreTLS: true, auth: { user: 'scanner', pass } })
        .sendMail({ from: 'scanner@office.test', to: 'ops@example.com', subject: 'x', text: 'y' });
    await expect(send('nope')).rejects.toMatchObject({ responseCode: 535 });
    // Twice: the second login is served from the verification cache and must still work.
    for (let i = 0; i < 2; i++) expect((await send('s3cret!')).response).toMatch(/^250 2\.0\.0 Ok: queued as \d+$/);
    expect(running.count('messages')).toBe(2);
  });
});

describe('SMTP ingress: TLS', () => {
  it('offers STARTTLS with a self-signed cert made once, kept with a private key file', async () => {
    running = await startIngress({ tls: { mode: 'starttls' }, auth: { required: true, users } });
    const { talk } = await SmtpTalk.open(running.port);
    expect(await talk.cmd('EHLO mfp')).toContain('STARTTLS');
    // Credentials never travel in clear when TLS is on offer.
    expect(await talk.cmd(`AUTH PLAIN ${b64('\0scanner\0s3cret!')}`)).toMatch(/^538 /);
    const secure = await startTls(talk);
    expect(secure.getPeerCertificate().subject.CN).toBe('relaybox.test');
    expect(secure.getProtocol()).toMatch(/^TLSv1\.[23]$/);
    secure.destroy();
    talk.socket.destroy();

    const info = await nodemailer
      .createTransport({ host: '127.0.0.1', port: running.port, requireTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'scanner', pass: 's3cret!' } })
      .sendMail({ from: 'scanner@office.test', to: 'ops@example.com', subject: 'over tls', text: 'hi' });
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as \d+$/);

    const paths = autoCertPaths(running.dir);
    expect((await stat(paths.key)).mode & 0o777).toBe(0o600);
    expect((await stat(paths.dir)).mode & 0o777).toBe(0o700);
    const cert = await readFile(paths.cert, 'utf8');
    expect(cert).toContain('BEGIN CERTIFICATE');

    // A restart reuses the pair instead of making a new one.
    await running.close({ keepDir: true });
    running = await startIngress({ tls: { mode: 'starttls' } }, paths.dir.replace(/\/tls$/, ''));
    expect(await readFile(paths.cert, 'utf8')).toBe(cert);
  });

  it('implicit TLS: the greeting comes over TLS; TLS 1.0/1.1 only when min_version asks for it', async () => {
    running = await startIngress({ tls: { mode: 'implicit' } });
    const legacy = { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;
    const greet = (options: object = {}) =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ port: running!.port, host: '127.0.0.1', rejectUnauthorized: false, ...options });
        socket.once('data', (data) => {
          resolve(`${socket.getProtocol()} ${data.toString().trim()}`);
          socket.destroy();
        });
        socket.once('error', reject);
      });
    expect(await greet()).toMatch(/^TLSv1\.[23] 220 relaybox\.test ESMTP relaybox$/);
    await expect(greet(legacy)).rejects.toThrow();

    await running.close();
    running = await startIngress({ tls: { mode: 'implicit', min_version: 'TLSv1' } });
    expect(await greet(legacy)).toMatch(/^TLSv1(\.1)? 220 /);
  });
});
