import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { expect } from 'vitest';
import { validateConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import type { RelayEvents } from '../src/events.js';
import { SmtpIngress } from '../src/ingress/smtp.js';
import { openSpool, type SpoolDb } from '../src/spool/db.js';
import { SpoolStore } from '../src/spool/store.js';

export interface RunningIngress {
  dir: string;
  config: Config;
  db: SpoolDb;
  spool: SpoolStore;
  ingress: SmtpIngress;
  port: number;
  count(table: 'messages' | 'body_chunks'): number;
  bodyOf(id: number): Promise<Buffer>;
  close(options?: { keepDir?: boolean }): Promise<void>;
}

/** An SmtpIngress on 127.0.0.1:<free port> over a fresh spool in a temp dir; tls.mode none unless given. */
export async function startIngress(
  smtp: Record<string, unknown> = {},
  dataDir?: string,
  options: { onTransaction?: () => void; events?: RelayEvents; evictSilentAfterMs?: number; logger?: pino.Logger } = {},
): Promise<RunningIngress> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'relaybox-ingress-')));
  const config = validateConfig({
    hostname: 'relaybox.test',
    data_dir: dir,
    smtp: { tls: { mode: 'none' }, ...smtp },
    upstreams: [{ name: 'outbox', type: 'file', dir: join(dir, 'outbox') }],
  });
  // The schema (rightly) refuses port 0 from users; tests need a free port.
  config.smtp.listen = [{ host: '127.0.0.1', port: 0 }];
  const db = openSpool(dir);
  const spool = new SpoolStore(db);
  const ingress = new SmtpIngress({ config, spool, logger: pino({ level: 'silent' }), closeTimeoutMs: 1000, ...options });
  const [bound] = await ingress.start();
  return {
    dir,
    config,
    db,
    spool,
    ingress,
    port: bound!.port,
    count: (table) => db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number,
    bodyOf: async (id) => {
      const chunks: Buffer[] = [];
      for await (const chunk of spool.body(id)) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    },
    close: async (options) => {
      await ingress.stop();
      spool.close();
      if (!options?.keepDir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A logger that keeps what it is told: `lines` are the parsed JSON log lines. */
export function capturedLog(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

/** STARTTLS on a raw connection; resolves with the TLS socket once the handshake is done. */
export async function startTls(talk: SmtpTalk, options: { minVersion?: 'TLSv1'; maxVersion?: 'TLSv1.1'; ciphers?: string } = {}): Promise<TLSSocket> {
  expect(await talk.cmd('STARTTLS')).toMatch(/^220 /);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ socket: talk.socket, rejectUnauthorized: false, servername: 'relaybox.test', ...options }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A line-level SMTP client for protocol checks: every reply comes back whole, as the server sent it. */
export class SmtpTalk {
  private buffer = '';
  private readonly replies: string[] = [];
  private readonly waiting: ((reply: string) => void)[] = [];
  private closed = false;

  constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => this.onData(text));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const resolve of this.waiting.splice(0)) resolve('(closed)');
    });
  }

  /** `localAddress`: another 127.x.y.z is another client to relaybox. */
  static async open(port: number, localAddress?: string): Promise<{ talk: SmtpTalk; greeting: string }> {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    const talk = new SmtpTalk(socket);
    return { talk, greeting: await talk.next() };
  }

  /** The next reply, multi-line replies joined by \n; `(closed)` once the server hung up. */
  next(): Promise<string> {
    const reply = this.replies.shift();
    if (reply !== undefined) return Promise.resolve(reply);
    if (this.closed) return Promise.resolve('(closed)');
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async cmd(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.next();
  }

  /** EHLO, MAIL, RCPT, DATA and the given raw data (which must end with CRLF.CRLF); the final reply. */
  async sendRaw(data: Buffer | string, from = 'scanner@office.test', to = 'ops@example.com'): Promise<string> {
    for (const line of [`MAIL FROM:<${from}>`, `RCPT TO:<${to}>`]) {
      const reply = await this.cmd(line);
      if (!reply.startsWith('250')) return reply;
    }
    const go = await this.cmd('DATA');
    if (!go.startsWith('354')) return go;
    this.socket.write(data);
    return this.next();
  }

  async quit(): Promise<void> {
    if (!this.closed) await this.cmd('QUIT');
    this.socket.destroy();
  }

  private onData(text: string): void {
    this.buffer += text;
    for (let m = REPLY.exec(this.buffer); m; m = REPLY.exec(this.buffer)) {
      this.buffer = this.buffer.slice(m[0].length);
      const reply = m[0].replace(/\r\n$/, '').replace(/\r\n/g, '\n');
      const waiter = this.waiting.shift();
      if (waiter) waiter(reply);
      else this.replies.push(reply);
    }
  }
}

const REPLY = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/;
