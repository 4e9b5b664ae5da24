import { createServer as createTcpServer, type Server } from 'node:net';
import { Readable } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { UpstreamConfig } from '../src/config/upstreams.js';
import { createUpstream } from '../src/upstreams/registry.js';
import type { UpstreamContext } from '../src/upstreams/types.js';
import type { UpstreamError } from '../src/upstreams/types.js';
import { certificate, TestUpstream } from './helpers/testUpstream.js';

const context: UpstreamContext = {
  hostname: 'relaybox.test.example',
  concurrency: 1,
  logger: pino({ level: 'silent' }),
  timeouts: { connect: 5_000, greeting: 3_000 },
};
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** What a delivery attempt through an `smtp` upstream ends with. */
async function failureOf(config: Partial<Extract<UpstreamConfig, { type: 'smtp' }>>): Promise<UpstreamError> {
  const upstream = createUpstream({ name: 'isp', type: 'smtp', host: '127.0.0.1', security: 'starttls', tls: { verify: true, ca: '' }, ...config } as UpstreamConfig, context);
  cleanups.push(() => upstream.close());
  const sent = upstream.send({ from: 'scanner@corp.example', to: ['it@corp.example'] }, () => Readable.from(['Subject: t\r\n\r\nhi\r\n']));
  return (await sent.then(() => expect.fail('sent'), (err: UpstreamError) => err)) as UpstreamError;
}

async function listening(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as { port: number }).port;
}

describe('socket errors in words, against real sockets', () => {
  it('a closed port: refused, nothing listens there (ECONNREFUSED)', async () => {
    const probe = createTcpServer();
    const port = await listening(probe);
    await new Promise((resolve) => probe.close(resolve));
    const err = await failureOf({ port });
    expect(err.reply).toBe(`connection refused by 127.0.0.1:${port} — nothing listens there (ECONNREFUSED)`);
    expect(err.phase).toBe('connect');
  });

  it('a self-signed certificate: not trusted, with the code', async () => {
    const server = await TestUpstream.start({ tls: true });
    cleanups.push(() => server.close());
    const err = await failureOf({ port: server.port });
    expect(err.reply).toBe('the certificate of the server is self-signed: not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)');
    expect(err.phase).toBe('tls');
  });

  it('implicit TLS to a STARTTLS port: the server speaks plain text there', async () => {
    const server = await TestUpstream.start({ tls: true });
    cleanups.push(() => server.close());
    const err = await failureOf({ port: server.port, security: 'tls' });
    expect(err.reply).toMatch(/^TLS handshake with the server failed: the server speaks plain text there .* \(ERR_SSL_WRONG_VERSION_NUMBER\)$/);
  });

  it('plain text to an implicit-TLS port: no greeting', async () => {
    const { cert, key } = await certificate();
    const port = await listening(createTlsServer({ cert, key }, (socket) => socket.on('error', () => {})));
    const err = await failureOf({ port, security: 'none' });
    expect(err.reply).toBe('Greeting never received: the server took the connection and said nothing (a TLS port like 465 used without security: tls?) (ETIMEDOUT)');
  });

  it('a name DNS does not know', async () => {
    const err = await failureOf({ host: 'no-such-host.invalid', port: 587 });
    expect(err.reply).toMatch(/^no-such-host\.invalid (not found in DNS \(ENOTFOUND\)|could not be looked up: .* \(EAI_AGAIN\))$/);
  });

  it('keeps a server reply as the server said it', async () => {
    const server = await TestUpstream.start();
    cleanups.push(() => server.close());
    server.failConnect(421, '4.7.0 Try again later, closing connection. (EHLO)');
    const err = await failureOf({ port: server.port, security: 'none' });
    expect(err.reply).toBe('421 4.7.0 Try again later, closing connection. (EHLO)');
  });
});
