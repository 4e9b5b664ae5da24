import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';

/** One SMTP reply: `250`, and its lines without the code (`smtp.example.com at your service`, ...). */
export interface Reply {
  code: number;
  lines: string[];
  /** The reply as the server wrote it, lines joined by ' / ', for the report. */
  text: string;
}

/**
 * A minimal SMTP client for diagnosis: every step is its own call, so doctor can say which one
 * failed and quote the server's words. nodemailer's SMTPConnection folds greeting, EHLO and
 * STARTTLS into one `connect()` and sends no mail-less MAIL FROM probe; it stays the sending path.
 */
export class SmtpWire {
  private buffer = '';
  private pending: Reply[] = [];
  private waiter: ((r: Reply | Error) => void) | undefined;
  private closedWith: Error | undefined;
  private socket: Socket;

  private constructor(socket: Socket) {
    this.socket = socket;
    this.attach(socket);
  }

  /** TCP (and, for implicit TLS, the handshake) to one address; `servername` is checked later. */
  static open(address: string, port: number, timeoutMs: number, tls?: ConnectionOptions): Promise<SmtpWire> {
    return new Promise((resolve, reject) => {
      const socket = tls ? tlsConnect({ ...tls, host: address, port }) : netConnect({ host: address, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(Object.assign(new Error(`no answer in ${Math.round(timeoutMs / 1000)} s`), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once(tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new SmtpWire(socket));
      });
    });
  }

  get tlsSocket(): TLSSocket | undefined {
    return 'getPeerCertificate' in this.socket ? (this.socket as TLSSocket) : undefined;
  }

  /** The next complete reply (multi-line replies are gathered), or the reason there is none. */
  read(timeoutMs: number): Promise<Reply> {
    const ready = this.pending.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closedWith) return Promise.reject(this.closedWith);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(Object.assign(new Error(`no reply in ${Math.round(timeoutMs / 1000)} s`), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      this.waiter = (r) => {
        clearTimeout(timer);
        this.waiter = undefined;
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
    });
  }

  async command(line: string, timeoutMs: number): Promise<Reply> {
    this.socket.write(`${line}\r\n`);
    return this.read(timeoutMs);
  }

  /** STARTTLS: the same socket, now under TLS. Resolves once the handshake is done. */
  upgrade(options: ConnectionOptions, timeoutMs: number): Promise<TLSSocket> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    return new Promise((resolve, reject) => {
      const secure = tlsConnect({ ...options, socket: plain });
      const timer = setTimeout(() => {
        secure.destroy();
        reject(Object.assign(new Error(`TLS handshake took longer than ${Math.round(timeoutMs / 1000)} s`), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      secure.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        secure.removeAllListeners('error');
        this.socket = secure;
        this.attach(secure);
        resolve(secure);
      });
    });
  }

  close(): void {
    if (!this.socket.destroyed) {
      this.socket.end('QUIT\r\n');
      setTimeout(() => this.socket.destroy(), 500).unref();
    }
  }

  private attach(socket: Socket): void {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => this.finish(err));
    socket.on('close', () => this.finish(Object.assign(new Error('the server closed the connection'), { code: 'ECONNRESET' })));
  }

  private finish(err: Error): void {
    this.closedWith ??= err;
    this.waiter?.(this.closedWith);
  }

  private collected: string[] = [];

  private onData(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, end).replace(/\r$/, '');
      this.buffer = this.buffer.slice(end + 1);
      const m = /^(\d{3})([ -]?)(.*)$/.exec(line);
      if (!m) continue;
      this.collected.push(m[3] ?? '');
      if (m[2] === '-') continue;
      const reply: Reply = { code: Number(m[1]), lines: this.collected, text: `${m[1]} ${this.collected.join(' / ')}`.trim() };
      this.collected = [];
      if (this.waiter) this.waiter(reply);
      else this.pending.push(reply);
    }
  }
}

/** `AUTH PLAIN LOGIN XOAUTH2` out of EHLO lines; upper case. */
export function ehloAuthMechanisms(lines: readonly string[]): string[] {
  for (const line of lines) {
    const m = /^AUTH[ =](.*)$/i.exec(line.trim());
    if (m) return (m[1] ?? '').toUpperCase().split(/\s+/).filter(Boolean);
  }
  return [];
}

export function ehloHas(lines: readonly string[], keyword: string): boolean {
  return lines.some((l) => l.trim().toUpperCase().split(/\s+/)[0] === keyword);
}
