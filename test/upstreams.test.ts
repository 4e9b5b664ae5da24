import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { UpstreamConfig } from '../src/config/upstreams.js';
import { createUpstream, createUpstreams } from '../src/upstreams/registry.js';
import type { UpstreamContext } from '../src/upstreams/types.js';
import { UpstreamError, type Upstream } from '../src/upstreams/types.js';
import { TestUpstream } from './helpers/testUpstream.js';
import { tempDir } from './helpers/tmp.js';

const context: UpstreamContext = { hostname: 'relaybox.test.example', concurrency: 2, logger: pino({ level: 'silent' }) };
const tls = { verify: true, ca: '' };

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((thing) => thing.close()));
});

async function testUpstream(options?: Parameters<typeof TestUpstream.start>[0]): Promise<TestUpstream> {
  const upstream = await TestUpstream.start(options);
  open.push(upstream);
  return upstream;
}

function upstreamFor(config: UpstreamConfig, ctx: UpstreamContext = context): Upstream {
  const upstream = createUpstream(config, ctx);
  open.push(upstream);
  return upstream;
}

function smtp(port: number, extra: Partial<Extract<UpstreamConfig, { type: 'smtp' }>> = {}, ctx = context): Upstream {
  return upstreamFor({ name: 'relay', type: 'smtp', host: '127.0.0.1', port, security: 'none', tls, ...extra }, ctx);
}

function message(subject: string, body = 'Hello from the scanner.\r\n'): Buffer {
  return Buffer.from(
    `From: scanner@office.example\r\nTo: ops@example.com\r\nSubject: ${subject}\r\n` +
      `Message-ID: <${subject.replace(/\W/g, '')}@relaybox.test.example>\r\n\r\n${body}`,
  );
}

/** A fresh stream per call, handed over in 64 KiB chunks like the spool does. */
function bodyOf(bytes: Buffer): () => Readable {
  function* chunks() {
    for (let at = 0; at < bytes.length; at += 65_536) yield bytes.subarray(at, at + 65_536);
  }
  return () => Readable.from(chunks());
}

/** A debug-level logger whose lines a test can read. */
function capturingContext(): { ctx: UpstreamContext; lines: string[] } {
  const lines: string[] = [];
  return { ctx: { ...context, logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) }) }, lines };
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const envelope = (...to: string[]) => ({ from: 'scanner@office.example', to: to.length ? to : ['ops@example.com'] });

async function upstreamError(promise: Promise<unknown>): Promise<UpstreamError> {
  const err = await promise.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(UpstreamError);
  return err as UpstreamError;
}

describe('smtp upstream', () => {
  it('relays the raw bytes unchanged, with our hostname as EHLO', async () => {
    const server = await testUpstream();
    const upstream = smtp(server.port);
    const small = message('small');
    const result = await upstream.send(envelope('ops@example.com', 'boss@example.com'), bodyOf(small));
    expect(result.accepted).toEqual(['ops@example.com', 'boss@example.com']);
    expect(result.rejected).toEqual([]);
    expect(result.reply).toBe('250 2.0.0 OK queued');
    const [got] = await server.waitForMessages(1);
    expect(got!.sha256).toBe(sha256(small));
    expect(got!.raw!.equals(small)).toBe(true);
    expect(got!.ehlo).toBe('relaybox.test.example');
    expect(got!.from).toBe('scanner@office.example');
  });

  it('streams a 5 MB message byte for byte', async () => {
    const server = await testUpstream();
    const upstream = smtp(server.port);
    const line = 'QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n';
    const big = message('big', line.repeat(Math.ceil((5 * 1024 * 1024) / line.length)));
    await upstream.send(envelope(), bodyOf(big));
    const [got] = await server.waitForMessages(1);
    expect(got!.size).toBe(big.length);
    expect(got!.sha256).toBe(sha256(big));
  });

  it('splits accepted and rejected recipients with the upstream reply', async () => {
    const server = await testUpstream();
    server.rejectRecipient('nobody@example.com', 550, '5.1.1 No such user');
    const upstream = smtp(server.port);
    const result = await upstream.send(envelope('ops@example.com', 'nobody@example.com'), bodyOf(message('partial')));
    expect(result.accepted).toEqual(['ops@example.com']);
    expect(result.rejected).toEqual([{ rcpt: 'nobody@example.com', reply: '550 5.1.1 No such user', code: 550 }]);
    const [got] = await server.waitForMessages(1);
    expect(got!.to).toEqual(['ops@example.com']);
  });

  it('reports every recipient refused as a result, not a crash', async () => {
    const server = await testUpstream();
    server.rejectRecipient('a@example.com', 550, '5.1.1 No such user');
    server.rejectRecipient('b@example.com', 450, '4.2.1 Peak SMTP relay limit exceeded');
    const upstream = smtp(server.port);
    const result = await upstream.send(envelope('a@example.com', 'b@example.com'), bodyOf(message('none')));
    expect(result.accepted).toEqual([]);
    expect(result.rejected).toEqual([
      { rcpt: 'a@example.com', reply: '550 5.1.1 No such user', code: 550 },
      { rcpt: 'b@example.com', reply: '450 4.2.1 Peak SMTP relay limit exceeded', code: 450 },
    ]);
    expect(server.messages).toHaveLength(0);
  });

  it('maps 451/550 at the end of DATA to phase data and keeps the connection', async () => {
    const server = await testUpstream();
    server.failData(451, '4.3.0 Mail server temporarily rejected message.', 1);
    const upstream = smtp(server.port, {}, { ...context, concurrency: 1 });
    const err = await upstreamError(upstream.send(envelope(), bodyOf(message('deferred'))));
    expect(err).toMatchObject({ code: 451, phase: 'data', reply: '451 4.3.0 Mail server temporarily rejected message.' });
    await upstream.send(envelope(), bodyOf(message('next')));
    expect(server.messages).toHaveLength(1);
    expect(server.connections).toBe(1);
    server.failData(550, '5.7.1 Messages missing a valid Message-ID header are not accepted.');
    const permanent = await upstreamError(upstream.send(envelope(), bodyOf(message('bad'))));
    expect(permanent).toMatchObject({ code: 550, phase: 'data', reply: '550 5.7.1 Messages missing a valid Message-ID header are not accepted.' });
  });

  it('maps a 421 greeting to phase greeting with the reply text', async () => {
    const server = await testUpstream();
    server.failConnect(421, '4.7.0 Try again later, closing connection. (EHLO)');
    const err = await upstreamError(smtp(server.port).send(envelope(), bodyOf(message('refused'))));
    expect(err).toMatchObject({ code: 421, phase: 'greeting', reply: '421 4.7.0 Try again later, closing connection. (EHLO)' });
    expect(server.connections).toBe(1); // no hidden retry against a refusing upstream
  });

  it('maps a refused connection to code null, phase connect', async () => {
    const server = await testUpstream();
    const port = server.port;
    await server.stop();
    const err = await upstreamError(smtp(port).send(envelope(), bodyOf(message('down'))));
    expect(err.code).toBeNull();
    expect(err.phase).toBe('connect');
    expect(err.reply).toMatch(/ECONNREFUSED/);
  });

  it('comes back after an outage on the same port', async () => {
    const server = await testUpstream();
    const upstream = smtp(server.port);
    await upstream.send(envelope(), bodyOf(message('before')));
    await server.stop();
    const err = await upstreamError(upstream.send(envelope(), bodyOf(message('during'))));
    expect(err.code).toBeNull();
    await server.restart();
    await upstream.send(envelope(), bodyOf(message('after')));
    expect(server.messages.map((m) => m.sha256)).toEqual([sha256(message('before')), sha256(message('after'))]);
  });

  it('does not fail a message because a pooled connection died while idle', async () => {
    const server = await testUpstream();
    const { ctx, lines } = capturingContext();
    const upstream = smtp(server.port, {}, ctx);
    await upstream.send(envelope(), bodyOf(message('one')));
    server.dropConnections(); // the server hangs up on the idle connection
    await new Promise((resolve) => setTimeout(resolve, 50));
    await upstream.send(envelope(), bodyOf(message('two')));
    server.dropAtMailFrom(1); // this time the client only finds out when it sends
    await upstream.send(envelope(), bodyOf(message('three')));
    expect(server.messages.map((m) => m.sha256)).toEqual(['one', 'two', 'three'].map((s) => sha256(message(s))));
    expect(server.connections).toBe(3);
    // the third message went through our one retry: nodemailer's own requeue can't re-read a stream
    expect(lines.filter((l) => l.includes('retrying once'))).toHaveLength(1);
  });

  it('refuses an unknown certificate by default and accepts it pinned through tls.ca', async () => {
    const server = await testUpstream({ tls: true, requireTls: true });
    const err = await upstreamError(smtp(server.port, { security: 'starttls' }).send(envelope(), bodyOf(message('mitm'))));
    expect(err.phase).toBe('tls');
    expect(err.code).toBeNull();
    expect(server.messages).toHaveLength(0);

    const caFile = join(tempDir(), 'upstream.pem');
    writeFileSync(caFile, server.cert!);
    const pinned = smtp(server.port, { security: 'starttls', tls: { verify: true, ca: caFile } });
    expect(pinned.describe()).toBe(`127.0.0.1:${server.port} starttls, no auth, verify certificates (ca ${caFile})`);
    await pinned.send(envelope(), bodyOf(message('pinned')));
    const [got] = await server.waitForMessages(1);
    expect(got!.secure).toBe(true);
  });

  it('sends in plaintext with security none, even when STARTTLS is offered', async () => {
    const server = await testUpstream({ tls: true });
    await smtp(server.port, { security: 'none' }).send(envelope(), bodyOf(message('plain')));
    const [got] = await server.waitForMessages(1);
    expect(got!.secure).toBe(false);
  });

  it('logs in with the configured credentials and reports a refused login as phase auth', async () => {
    const server = await testUpstream({ auth: { user: 'relay', pass: 's3cret-pass' } });
    await smtp(server.port, { auth: { user: 'relay', pass: 's3cret-pass' } }).send(envelope(), bodyOf(message('auth')));
    const [got] = await server.waitForMessages(1);
    expect(got!.authUser).toBe('relay');

    const { ctx, lines } = capturingContext();
    const wrong = smtp(server.port, { auth: { user: 'relay', pass: 'wr0ng-pass-xyz' } }, ctx);
    expect(wrong.describe()).not.toContain('wr0ng');
    const err = await upstreamError(wrong.send(envelope(), bodyOf(message('wrong'))));
    expect(err).toMatchObject({ code: 535, phase: 'auth', reply: '535 5.7.8 Username and Password not accepted' });
    expect(lines.length).toBeGreaterThan(0); // nodemailer's debug lines about the refused login
    expect(lines.join('\n')).not.toContain('wr0ng');
  });

  it('reuses connections: 20 messages at concurrency 2 need at most 2 connections and logins', async () => {
    const server = await testUpstream({ auth: { user: 'relay', pass: 'pw' }, keepRaw: false });
    const upstream = smtp(server.port, { auth: { user: 'relay', pass: 'pw' } });
    const bodies = Array.from({ length: 20 }, (_, i) => message(`burst ${i}`));
    const results = await Promise.all(bodies.map((body) => upstream.send(envelope(), bodyOf(body))));
    expect(results.every((r) => r.reply.startsWith('250'))).toBe(true);
    expect(server.messages).toHaveLength(20);
    expect(new Set(server.messages.map((m) => m.sha256))).toEqual(new Set(bodies.map(sha256)));
    expect(server.connections).toBeLessThanOrEqual(2);
    expect(server.logins).toBeLessThanOrEqual(2);
  });
});

describe('gmail-relay upstream', () => {
  it('refuses to send without STARTTLS', async () => {
    const server = await testUpstream();
    const google = upstreamFor({ name: 'google', type: 'gmail-relay', host: '127.0.0.1', port: server.port, tls });
    const err = await upstreamError(google.send(envelope(), bodyOf(message('cleartext'))));
    expect(err.phase).toBe('tls');
    expect(server.messages).toHaveLength(0);
  });

  it('delivers through a STARTTLS upstream with a pinned certificate', async () => {
    const server = await testUpstream({ tls: true, requireTls: true });
    const caFile = join(tempDir(), 'ca.pem');
    writeFileSync(caFile, server.cert!);
    const google = upstreamFor({ name: 'google', type: 'gmail-relay', host: '127.0.0.1', port: server.port, tls: { verify: true, ca: caFile } });
    await google.send(envelope(), bodyOf(message('google')));
    const [got] = await server.waitForMessages(1);
    expect(got).toMatchObject({ secure: true, ehlo: 'relaybox.test.example' });
  });
});

describe('file upstream', () => {
  it('writes exactly the message bytes to a .eml file, atomically', async () => {
    const dir = join(tempDir(), 'outbox', 'nested'); // created on first use
    const outbox = upstreamFor({ name: 'outbox', type: 'file', dir });
    expect(outbox.describe()).toBe(`file → ${dir}`);
    const bytes = message('file', 'line\r\n'.repeat(200_000));
    const result = await outbox.send({ ...envelope('a@example.com', 'b@example.com'), spoolId: 42 }, bodyOf(bytes));
    const files = readdirSync(dir);
    expect(files).toHaveLength(1); // no temp files left behind
    expect(files[0]).toMatch(/^\d{8}T\d{6}-42\.eml$/);
    expect(readFileSync(join(dir, files[0]!)).equals(bytes)).toBe(true);
    expect(result).toEqual({ accepted: ['a@example.com', 'b@example.com'], rejected: [], reply: `250 written ${files[0]}` });

    await outbox.send(envelope(), bodyOf(message('no id')));
    expect(readdirSync(dir).filter((f) => !/-42\.eml$/.test(f))[0]).toMatch(/^\d{8}T\d{6}-[0-9a-f]{12}\.eml$/);
  });

  it('leaves no temp file behind when the body stream fails', async () => {
    const dir = tempDir();
    const outbox = upstreamFor({ name: 'outbox', type: 'file', dir });
    const failing = () => new Readable({ read() { this.destroy(new Error('spool read failed')); } }); // prettier-ignore
    const err = await upstreamError(outbox.send(envelope(), failing));
    expect(err.reply).toContain('spool read failed');
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('registry', () => {
  it('builds every configured upstream in order, described without secrets', () => {
    const dir = tempDir();
    const list = createUpstreams(
      [
        { name: 'google', type: 'gmail-relay', tls },
        { name: 'google-auth', type: 'gmail-relay', tls, auth: { user: 'me@example.com', pass: 'hunter22' } },
        { name: 'provider', type: 'smtp', host: 'smtp.example.net', port: 465, security: 'tls', tls: { verify: false, ca: '' }, auth: { user: 'apikey', pass: 'SG.secret' } },
        { name: 'outbox', type: 'file', dir },
      ],
      context,
    );
    open.push(...list);
    expect(list.map((u) => [u.name, u.type, u.describe()])).toEqual([
      ['google', 'gmail-relay', 'smtp-relay.gmail.com:587 starttls, no auth, verify certificates'],
      ['google-auth', 'gmail-relay', 'smtp-relay.gmail.com:587 starttls, auth as me@example.com, verify certificates'],
      ['provider', 'smtp', 'smtp.example.net:465 tls, auth as apikey, certificates NOT verified'],
      ['outbox', 'file', `file → ${dir}`],
    ]);
  });

  it('fails clearly on an unreadable CA file', () => {
    expect(() => createUpstream({ name: 'x', type: 'smtp', host: 'h.example', security: 'starttls', tls: { verify: true, ca: '/nonexistent/ca.pem' } }, context)).toThrow(
      'upstream x: cannot read tls.ca /nonexistent/ca.pem: ENOENT',
    );
  });
});
