// A large message on disk: MIME with one base64 attachment of random bytes, CRLF lines of 76
// characters (no line starts with '.', so no dot-stuffing is needed). Hashes are computed while
// writing: of the whole file and of the body after the header block (relays add Received:).
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';

export async function buildBigMessage(dir, { bytes = 30 * 1024 * 1024, from, to }) {
  const file = join(dir, `big-${bytes}.eml`);
  const out = createWriteStream(file);
  const whole = createHash('sha256');
  const body = createHash('sha256');
  let size = 0;
  const write = async (text, isBody = true) => {
    const buf = Buffer.from(text, 'latin1');
    whole.update(buf);
    if (isBody) body.update(buf);
    size += buf.length;
    if (!out.write(buf)) await once(out, 'drain');
  };
  const boundary = `bench-${Date.now()}`;
  await write(
    [
      `From: <${from}>`,
      `To: <${to}>`,
      'Subject: bench 30 MB scan',
      `Message-ID: <big-${Date.now()}@bench.example.com>`,
      `Date: ${new Date().toUTCString()}`,
      'X-Bench-Id: big',
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      '',
      '',
    ].join('\r\n'),
    false,
  );
  const closing = `\r\n--${boundary}--\r\n`;
  await write(`--${boundary}\r\nContent-Type: text/plain\r\n\r\nScan attached.\r\n--${boundary}\r\n` +
    'Content-Type: application/pdf; name="scan.pdf"\r\nContent-Transfer-Encoding: base64\r\n' +
    'Content-Disposition: attachment; filename="scan.pdf"\r\n\r\n');
  const LINE_RAW = 57; // → 76 base64 characters
  const lines = Math.max(1, Math.floor((bytes - size - closing.length) / 78));
  for (let done = 0; done < lines; ) {
    const n = Math.min(1000, lines - done);
    const raw = randomBytes(LINE_RAW * n);
    let text = '';
    for (let i = 0; i < n; i++) text += raw.subarray(i * LINE_RAW, (i + 1) * LINE_RAW).toString('base64') + '\r\n';
    await write(text);
    done += n;
  }
  await write(closing.slice(2));
  out.end();
  await once(out, 'finish');
  return { file, size, sha: whole.digest('hex'), bodySha: body.digest('hex') };
}
