// A minimal SMTP client on a raw socket: exact timestamps of each reply, bodies streamed from a
// file with backpressure (so a 30 MB message never sits in this process), and a load generator
// shaped like `smtp-source -s S -m M -l L` (one message per connection) for machines without Postfix.
import { createReadStream } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import { nowMs, withTimeout } from './util.mjs';

export class SmtpConn {
  constructor(socket) {
    this.socket = socket;
    this.buffer = '';
    this.lines = [];
    this.waiters = [];
    this.closed = null;
    socket.setNoDelay(true);
    socket.on('data', (d) => this.onData(d));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static async open(port, host = '127.0.0.1', ehlo = 'bench-client.example.com') {
    const socket = net.connect({ port, host });
    const conn = new SmtpConn(socket);
    const greeting = await conn.reply(10_000);
    if (greeting.code !== 220) throw new Error(`greeting: ${greeting.text}`);
    conn.greetedAt = greeting.t;
    if (ehlo) await conn.expect(`EHLO ${ehlo}`, 250);
    return conn;
  }

  onData(data) {
    this.buffer += data.toString('latin1');
    let nl;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.lines.push(line);
      if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
        const text = this.lines.join('\n');
        this.lines = [];
        const reply = { code: Number(line.slice(0, 3)), text, t: nowMs() };
        const w = this.waiters.shift();
        if (w) w.resolve(reply);
      }
    }
  }

  fail(err) {
    this.closed ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /** The next complete reply. */
  reply(ms = 30_000) {
    if (this.closed) return Promise.reject(this.closed);
    return withTimeout(new Promise((resolve, reject) => this.waiters.push({ resolve, reject })), ms, 'SMTP reply');
  }

  async command(line, ms) {
    const r = this.reply(ms);
    this.socket.write(`${line}\r\n`);
    return r;
  }

  async expect(line, code, ms) {
    const r = await this.command(line, ms);
    if (r.code !== code) throw new Error(`${line.split(' ')[0]}: expected ${code}, got ${r.text}`);
    return r;
  }

  /**
   * One transaction. `body` is a Buffer or { file } and must already be CRLF, dot-stuffed and end
   * with CRLF. Returns the 250 reply (with its arrival time `t`) and when DATA's payload began.
   */
  async send({ from, to, body, ms = 60_000, uploadMs = 0 }) {
    await this.expect(`MAIL FROM:<${from}>`, 250, ms);
    for (const rcpt of [].concat(to)) await this.expect(`RCPT TO:<${rcpt}>`, 250, ms);
    await this.expect('DATA', 354, ms);
    // `uploadMs`: a device sending a scan over the LAN (2 MB at 100 Mbit/s is about 150 ms).
    if (uploadMs > 0) await new Promise((r) => setTimeout(r, uploadMs));
    const dataStart = nowMs();
    const final = this.reply(ms);
    final.catch(() => {}); // observed below; avoid an unhandled rejection while streaming
    if (Buffer.isBuffer(body)) this.socket.write(body);
    else {
      for await (const chunk of createReadStream(body.file, { highWaterMark: 256 * 1024 })) {
        if (!this.socket.write(chunk)) await withTimeout(once(this.socket, 'drain'), ms, 'socket drain');
      }
    }
    const dataSent = nowMs();
    this.socket.write('.\r\n');
    const r = await final;
    if (r.code !== 250) throw new Error(`end of DATA: expected 250, got ${r.text}`);
    return { ...r, dataStart, dataSent };
  }

  async quit() {
    try {
      await this.command('QUIT', 5000);
    } catch {}
    this.socket.destroy();
  }
}

/** A small message like smtp-source's: a few headers and `payload` bytes of 80-column text. */
export function smallMessage({ from, to, payload = 1024, id = '0' }) {
  const head = [
    `From: <${from}>`,
    `To: <${to}>`,
    `Subject: bench ${id}`,
    `Message-ID: <bench-${id}-${process.pid}@bench.example.com>`,
    `Date: ${new Date().toUTCString()}`,
    `X-Bench-Id: ${id}`,
    '',
    '',
  ].join('\r\n');
  let text = '';
  const line = 'La la la la la la la la la la la la la la la la la la la la la la la la la la la';
  while (text.length < payload) text += `${line}\r\n`;
  return Buffer.from(head + text.slice(0, payload - 2) + '\r\n', 'latin1');
}

/**
 * The Node stand-in for smtp-source: `sessions` connections in parallel, each message on a new
 * connection (EHLO, MAIL, RCPT, DATA, QUIT), `messages` in total.
 */
export async function nodeLoad({ port, sessions = 10, messages = 1000, payload = 1024, from, to, ms = 600_000 }) {
  const body = smallMessage({ from, to, payload, id: 'load' });
  let next = 0;
  let ok = 0;
  const errors = [];
  const deadline = Date.now() + ms;
  const worker = async () => {
    while (next < messages && Date.now() < deadline && errors.length < 20) {
      next++;
      let conn;
      try {
        conn = await SmtpConn.open(port);
        await conn.send({ from, to, body });
        ok++;
      } catch (err) {
        errors.push(String(err.message ?? err));
      } finally {
        await conn?.quit();
      }
    }
  };
  const t0 = nowMs();
  await Promise.all(Array.from({ length: sessions }, worker));
  return { ok, failed: errors.length, errors: errors.slice(0, 3), durationMs: nowMs() - t0 };
}
