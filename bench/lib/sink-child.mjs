// The upstream both relays deliver to: a minimal SMTP server on a raw socket that accepts
// everything, hashes each message and tells the parent (IPC) when its end-of-DATA arrived, on
// the shared monotonic clock. Its own process, so it never competes with the bench client.
//   fork('sink-child.mjs', [port]) → {type:'ready'}; per message {type:'msg', ...}
// Not smtp-server: that package holds every new connection for a fixed 100 ms before its
// greeting (early-talker check), which would cap the sink, not the relay under test.
import { createHash } from 'node:crypto';
import net from 'node:net';

const port = Number(process.argv[2] ?? 2527);
const HEADER_KEEP = 16 * 1024;
const TERMINATOR = Buffer.from('\r\n.');
let count = 0;

/** Hashes the whole message and, apart, the body after the first CRLFCRLF (relays add headers). */
function digester() {
  const whole = createHash('sha256');
  const body = createHash('sha256');
  let inHeader = true;
  let tail = Buffer.alloc(0);
  const head = [];
  let headBytes = 0;
  let size = 0;
  return {
    update(chunk) {
      size += chunk.length;
      whole.update(chunk);
      if (!inHeader) return body.update(chunk);
      if (headBytes < HEADER_KEEP) { head.push(chunk); headBytes += chunk.length; }
      const joined = Buffer.concat([tail, chunk]);
      const at = joined.indexOf('\r\n\r\n');
      if (at < 0) { tail = joined.subarray(Math.max(0, joined.length - 3)); return; }
      inHeader = false;
      body.update(joined.subarray(at + 4));
    },
    digest() {
      const header = Buffer.concat(head).toString('latin1').split('\r\n\r\n')[0];
      return { size, sha: whole.digest('hex'), bodySha: body.digest('hex'), benchId: /^X-Bench-Id:\s*(\S+)/im.exec(header)?.[1] ?? null };
    },
  };
}

/**
 * DATA payload: finds CRLF.CRLF, removes dot-stuffing, hands the content on. The start of DATA
 * counts as a line start (a virtual CRLF that is never emitted).
 */
function dataReader(onContent) {
  let pending = Buffer.from('\r\n');
  let skip = 2;
  const emit = (b) => {
    if (skip > 0) { const k = Math.min(skip, b.length); b = b.subarray(k); skip -= k; }
    if (b.length > 0) onContent(b);
  };
  /** Returns the bytes after the terminator once it is seen, else null. */
  return (chunk) => {
    const buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    pending = Buffer.alloc(0);
    let from = 0;
    for (;;) {
      const j = buf.indexOf(TERMINATOR, from);
      if (j < 0) {
        const keep = Math.min(2, buf.length - from);
        emit(buf.subarray(from, buf.length - keep));
        pending = Buffer.from(buf.subarray(buf.length - keep));
        return null;
      }
      if (buf.length < j + 5) { emit(buf.subarray(from, j)); pending = Buffer.from(buf.subarray(j)); return null; }
      emit(buf.subarray(from, j + 2));
      if (buf[j + 3] === 13 && buf[j + 4] === 10) return buf.subarray(j + 5);
      from = j + 3; // a stuffed dot: drop it
    }
  };
}

function session(socket) {
  socket.setNoDelay(true);
  let text = '';
  let rcpts = 0;
  let reader = null;
  let digest = null;
  const reply = (line) => socket.write(`${line}\r\n`);
  const command = (line) => {
    const verb = line.slice(0, 4).toUpperCase();
    if (verb === 'EHLO') return reply('250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 134217728\r\n250 ENHANCEDSTATUSCODES');
    if (verb === 'HELO') return reply('250 bench-sink');
    if (verb === 'MAIL') { rcpts = 0; return reply('250 2.1.0 Ok'); }
    if (verb === 'RCPT') { rcpts++; return reply('250 2.1.5 Ok'); }
    if (verb === 'DATA') {
      if (rcpts === 0) return reply('503 5.5.1 Error: need RCPT command');
      digest = digester();
      reader = dataReader((b) => digest.update(b));
      return reply('354 End data with <CR><LF>.<CR><LF>');
    }
    if (verb === 'RSET' || verb === 'NOOP') { rcpts = 0; return reply('250 2.0.0 Ok'); }
    if (verb === 'QUIT') { reply('221 2.0.0 Bye'); return socket.end(); }
    return reply('502 5.5.2 Error: command not recognized');
  };
  const onData = (chunk) => {
    while (chunk && chunk.length) {
      if (reader) {
        const rest = reader(chunk);
        if (rest === null) return;
        const t = process.hrtime.bigint(); // end-of-DATA seen
        count++;
        process.send?.({ type: 'msg', n: count, t: t.toString(), rcpts, ...digest.digest() });
        reader = null;
        rcpts = 0;
        reply(`250 2.0.0 Ok: queued as S${count}`);
        chunk = rest;
        continue;
      }
      text += chunk.toString('latin1');
      chunk = null;
      let nl;
      while (!reader && (nl = text.indexOf('\n')) >= 0) {
        const line = text.slice(0, nl).replace(/\r$/, '');
        text = text.slice(nl + 1);
        command(line);
      }
      if (reader && text.length) { chunk = Buffer.from(text, 'latin1'); text = ''; }
      if (text.length > 65536) return socket.destroy();
    }
  };
  socket.on('data', onData);
  socket.on('error', () => {});
  reply('220 bench-sink ESMTP');
}

const server = net.createServer(session);
process.on('message', (m) => {
  if (m?.type === 'clock') process.send({ type: 'clock', id: m.id, t: process.hrtime.bigint().toString() });
  if (m?.type === 'stop') { server.close(); process.exit(0); }
});
process.on('disconnect', () => process.exit(0));
server.on('error', (err) => { process.send?.({ type: 'error', message: String(err?.message ?? err) }); process.exit(1); });
server.listen(port, '127.0.0.1', () => process.send?.({ type: 'ready', port }));
