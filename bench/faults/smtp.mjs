// A bare SMTP line client for the fault scripts: one reply at a time, `(closed)` once the server
// hung up, from any 127.x.y.z source address.
import net from 'node:net';

export class Talk {
  constructor(socket) {
    this.socket = socket;
    this.buffer = '';
    this.replies = [];
    this.waiting = [];
    this.closed = false;
    socket.setEncoding('latin1');
    socket.on('data', (text) => this.onData(text));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const resolve of this.waiting.splice(0)) resolve('(closed)');
    });
  }

  /** Connects and resolves with the talk and its greeting. */
  static async open(port, localAddress = '127.0.0.1') {
    const talk = new Talk(net.connect({ port, host: '127.0.0.1', localAddress }));
    return { talk, greeting: await talk.next() };
  }

  next() {
    if (this.replies.length) return Promise.resolve(this.replies.shift());
    if (this.closed) return Promise.resolve('(closed)');
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  cmd(line) {
    if (!this.closed) this.socket.write(`${line}\r\n`);
    return this.next();
  }

  close() {
    this.socket.destroy();
  }

  onData(text) {
    this.buffer += text;
    const re = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/;
    for (let m = re.exec(this.buffer); m; m = re.exec(this.buffer)) {
      this.buffer = this.buffer.slice(m[0].length);
      const reply = m[0].trimEnd();
      const waiter = this.waiting.shift();
      if (waiter) waiter(reply);
      else this.replies.push(reply);
    }
  }
}

export const plain = (user, pass) => Buffer.from(`\0${user}\0${pass}`).toString('base64');
