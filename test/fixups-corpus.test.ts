import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import addrs from 'email-addresses';
import { describe, expect, it } from 'vitest';
import { CrlfNormalizer } from '../src/message/crlf.js';
import { decodeEncodedWords } from '../src/message/headers.js';
import type { FixupContext } from '../src/message/fixups.js';
import { applyFixups, HEADER_LIMIT_BYTES } from '../src/message/fixupsStream.js';

const DIR = join(import.meta.dirname, 'fixtures/devices');
const ctx: FixupContext = {
  hostname: 'relaybox.example.com',
  messageId: 'lq2x.7.relaybox@relaybox.example.com',
  date: new Date(Date.UTC(2024, 0, 2, 15, 4, 5)),
  envelopeFrom: 'device@example.com',
  headerFrom: '',
};
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** What the spool holds for a fixture: its bytes after ingress's CRLF step. */
async function spooled(name: string): Promise<Buffer> {
  return buffer(Readable.from([readFileSync(join(DIR, name))]).pipe(new CrlfNormalizer()));
}

/** Small chunks by default, so that the header section is found across chunk boundaries too. */
async function outgoing(name: string, chunkBytes = 97): Promise<{ input: Buffer; out: Buffer; changed: string[] }> {
  const input = await spooled(name);
  const changed: string[] = [];
  const chunks = Array.from({ length: Math.ceil(input.length / chunkBytes) }, (_, i) => input.subarray(i * chunkBytes, (i + 1) * chunkBytes));
  const out = await buffer(applyFixups(Readable.from(chunks), { ...ctx, onFix: (c) => changed.push(...c) }));
  return { input, out, changed };
}

function split(message: Buffer): { fields: { name: string; value: string }[]; body: Buffer } {
  const end = message.indexOf('\r\n\r\n');
  const head = message.toString('latin1', 0, end + 2);
  const fields = head
    .replace(/\r\n(?=[ \t])/g, '')
    .split('\r\n')
    .filter(Boolean)
    .map((l) => ({ name: l.slice(0, l.indexOf(':')).toLowerCase(), value: l.slice(l.indexOf(':') + 1).trim() }));
  return { fields, body: message.subarray(end + 4) };
}

const SINGLE = ['date', 'from', 'sender', 'reply-to', 'to', 'cc', 'bcc', 'message-id', 'in-reply-to', 'references', 'subject'];

describe('the device corpus after the fix-ups', () => {
  const names = readdirSync(DIR).filter((n) => n.endsWith('.eml'));

  it.each(names)('%s goes out as a message Gmail accepts', async (name) => {
    const { out } = await outgoing(name);
    const { fields } = split(out);
    for (const single of SINGLE) expect(fields.filter((f) => f.name === single).length, single).toBeLessThanOrEqual(1);
    expect(fields.filter((f) => f.name === 'from')).toHaveLength(1);
    expect(fields.find((f) => f.name === 'message-id')?.value).toMatch(/^<[^<>\s@]+@[^<>\s@]+>$/);
    const from = fields.find((f) => f.name === 'from')!.value;
    expect(addrs.parseFrom({ input: from, rfc6532: true, strict: true }), from).toHaveLength(1);
    expect(addrs.parseOneAddress({ input: from, rfc6532: true, strict: true })?.type, from).toBe('mailbox');
    expect(Date.parse(fields.find((f) => f.name === 'date')!.value)).not.toBeNaN();
    expect(out.toString('latin1')).not.toMatch(/(^|[^\r])\n/); // CRLF only
    expect(out.toString('latin1').split('\r\n').every((l) => l.length <= 998)).toBe(true);
  });

  it('leaves a well-formed message byte for byte as it came', async () => {
    const { input, out, changed } = await outgoing('well-formed.eml');
    expect(sha256(out)).toBe(sha256(input));
    expect(changed).toEqual([]);
  });

  it('adds Message-ID and Date to a bare-LF scan and leaves its base64 untouched', async () => {
    const { input, out, changed } = await outgoing('scanner-bare-lf.eml');
    expect(changed).toEqual(['added Message-ID', 'added Date']);
    expect(split(out).body.equals(split(input).body)).toBe(true);
    expect(out.toString()).toMatch(/\r\nMessage-ID: <lq2x\.7\.relaybox@relaybox\.example\.com>\r\nDate: Tue, 02 Jan 2024 15:04:05 \+0000\r\n\r\n------=_scan_0001/);
  });

  it('keeps the first of duplicate From, Subject and Date of a NAS', async () => {
    const { out, changed } = await outgoing('nas-duplicate-headers.eml');
    const { fields } = split(out);
    expect(fields.find((f) => f.name === 'from')!.value).toBe('nas@storage.example.com');
    expect(fields.find((f) => f.name === 'date')!.value).toBe('Tue, 02 Jan 2024 03:00:00 +0100');
    expect(fields.filter((f) => f.name === 'x-mailer')).toHaveLength(2);
    expect(changed).toEqual(['dropped repeated From', 'dropped repeated Subject', 'dropped repeated Date']);
  });

  it('passes an 8-bit body without 8BITMIME as it is', async () => {
    const { input, out } = await outgoing('ups-8bit-body.eml');
    expect(split(out).body.equals(split(input).body)).toBe(true);
    expect(split(out).body.toString('utf8')).toContain('Température intérieure : 31 °C');
  });

  it('folds the 2000-octet Subject of a sensor at spaces and encodes its 2000-octet token', async () => {
    const { input, out, changed } = await outgoing('sensor-long-header.eml');
    expect(changed).toEqual(['folded header lines over 998 octets', 'RFC 2047-encoded header words too long for a line']);
    const value = (m: Buffer, name: string) => split(m).fields.find((f) => f.name === name)!.value;
    // The subject folds at a space: unfolded it is the same; the token reads the same once decoded.
    expect(value(out, 'subject')).toBe(value(input, 'subject'));
    expect(value(out, 'x-sensor-dump')).toMatch(/^=\?UTF-8\?Q\?/);
    expect(decodeEncodedWords(value(out, 'x-sensor-dump'))).toBe(value(input, 'x-sensor-dump'));
  });

  it.each([
    ['from-no-address.eml', '"MFP-3F" <device@example.com>', 'MFP-3F', 'From had no address: one added, its text kept as the name'],
    ['from-bare-word.eml', '"scanner" <device@example.com>', 'scanner', 'From had no address: one added, its text kept as the name'],
    ['from-unquoted-comma.eml', '"Scanner, 2F" <scanner2f@office.example.com>', 'Scanner, 2F <scanner2f@office.example.com>', 'From made one valid mailbox, its text kept as the name'],
  ])('%s gets the From %s, the device value kept in X-Original-From', async (name, from, original, note) => {
    const { input, out, changed } = await outgoing(name);
    const value = (m: Buffer, field: string) => split(m).fields.filter((f) => f.name === field).map((f) => f.value);
    expect(value(out, 'from')).toEqual([from]);
    expect(value(out, 'x-original-from')).toEqual([original]);
    expect(changed).toEqual([note]);
    expect(split(out).body.equals(split(input).body)).toBe(true);
  });

  it.each([
    ['date-slashes.eml', '2024/01/02 10:00'],
    ['date-asctime.eml', 'Tue Jan  2 10:00:00 2024'],
    ['date-no-zone.eml', 'Tue, 02 Jan 2024 10:00:00'],
  ])('%s gets the time relaybox received it as Date, the device value kept in X-Original-Date', async (name, original) => {
    const { out, changed } = await outgoing(name);
    expect(out.toString()).toContain(`\r\nDate: Tue, 02 Jan 2024 15:04:05 +0000\r\nX-Original-Date: ${original}\r\n`);
    expect(changed).toEqual(['replaced a malformed Date, the device Date kept in X-Original-Date']);
  });

  it('folds a To of addresses joined without spaces after its commas, never inside an address', async () => {
    const { input, out, changed } = await outgoing('to-long-no-spaces.eml');
    expect(changed).toEqual(['folded header lines over 998 octets']);
    const lines = out.toString().split('\r\n');
    const to = lines.slice(lines.findIndex((l) => l.startsWith('To: ')), lines.findIndex((l) => l.startsWith('Subject: ')));
    expect(to.length).toBeGreaterThan(1);
    expect(to.slice(0, -1).every((l) => l.length <= 998 && l.endsWith(','))).toBe(true);
    expect(to.slice(1).every((l) => /^ user\d\d@office\.example\.com,/.test(l))).toBe(true);
    const list = (m: Buffer) => addrs.parseAddressList({ input: split(m).fields.find((f) => f.name === 'to')!.value, strict: true })!.map((a) => (a as { address: string }).address);
    expect(list(out)).toEqual(list(input));
    expect(list(out)).toHaveLength(60);
  });

  it('adds From, Date and Message-ID to a cron mail', async () => {
    const { out } = await outgoing('script-no-from.eml');
    expect(out.toString()).toBe(
      'Subject: cron: backup ok\r\nTo: root@example.com\r\nFrom: device@example.com\r\nMessage-ID: <lq2x.7.relaybox@relaybox.example.com>\r\n' +
        'Date: Tue, 02 Jan 2024 15:04:05 +0000\r\n\r\nDone in 42 s.\r\n',
    );
  });

  it('splits a one-line HTML body of a printer before a space', async () => {
    // In spool-sized chunks: the breaker looks for a space within the chunk it has.
    const { input, out, changed } = await outgoing('printer-long-body-line.eml', 256 * 1024);
    expect(changed).toEqual(['split body lines over 998 octets']);
    const body = split(out).body.toString();
    expect(body.split('\r\n').length).toBeGreaterThan(4);
    expect(body.replace(/\r\n(?= )/g, '')).toBe(split(input).body.toString());
  });

  it('keeps the text of a camera mail without header as its body', async () => {
    const { input, out } = await outgoing('camera-no-header.eml');
    expect(split(out).body.equals(input)).toBe(true);
  });
});

describe('applyFixups streaming', () => {
  it('sends the body of a 30 MB scan on as it comes, holding only the header', async () => {
    const header = Buffer.from('From: scanner@example.com\r\nTo: a@example.com\r\nSubject: big\r\n\r\n');
    const line = Buffer.from(`${'QUJD'.repeat(19)}\r\n`);
    const chunk = Buffer.concat(Array.from({ length: Math.floor((256 * 1024) / line.length) }, () => line));
    let pulled = 0;
    const source = Readable.from(
      (function* () {
        yield header;
        for (let i = 0; i < 120; i++, pulled++) yield chunk;
      })(),
    );
    const out = applyFixups(source, ctx);
    const hash = createHash('sha256');
    let bytes = 0;
    let pulledAtFirstBody = -1;
    for await (const piece of out as AsyncIterable<Buffer>) {
      if (bytes > 1000 && pulledAtFirstBody === -1) pulledAtFirstBody = pulled;
      bytes += piece.length;
      hash.update(piece);
    }
    expect(bytes).toBeGreaterThan(30_000_000);
    expect(pulledAtFirstBody).toBeLessThan(10); // the stream's buffers, not the message
    const expected = createHash('sha256');
    expected.update(Buffer.from('From: scanner@example.com\r\nTo: a@example.com\r\nSubject: big\r\nMessage-ID: <lq2x.7.relaybox@relaybox.example.com>\r\nDate: Tue, 02 Jan 2024 15:04:05 +0000\r\n\r\n'));
    for (let i = 0; i < 120; i++) expected.update(chunk);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
  });

  it('folds the lines of a header section over 256 KiB chunk by chunk, holding no more than 256 KiB', async () => {
    // A 1.9 MB header line, as one device sent: generated, not committed.
    const junk = Buffer.from(`X-Junk: ${'a'.repeat(1_900_000)}\r\nFrom: s@example.com\r\n\r\nbody\r\n`);
    const changed: string[] = [];
    const chunks = Array.from({ length: Math.ceil(junk.length / 65536) }, (_, i) => junk.subarray(i * 65536, (i + 1) * 65536));
    let pulled = 0;
    const source = Readable.from((function* () { for (const c of chunks) { pulled += c.length; yield c; } })());
    const pieces: Buffer[] = [];
    let mostAhead = 0;
    let sent = 0;
    for await (const piece of applyFixups(source, { ...ctx, onFix: (c) => changed.push(...c) }) as AsyncIterable<Buffer>) {
      mostAhead = Math.max(mostAhead, pulled - sent);
      sent += piece.length;
      pieces.push(piece);
    }
    const out = Buffer.concat(pieces).toString('latin1');
    expect(out.split('\r\n').every((l) => l.length <= 998)).toBe(true);
    expect(out.replace(/\r\n /g, '')).toBe(junk.toString('latin1'));
    expect(mostAhead).toBeLessThan(HEADER_LIMIT_BYTES + 4 * 65536); // held: the limit and the stream's buffers
    expect(changed).toEqual(['header section over 256 KiB: only lines over 998 octets folded']);
  });

  it('passes an error of the spool reader on, and closes it when the reader of the output goes away', async () => {
    const failing = new Readable({ read() { this.destroy(new Error('disk I/O error')); } });
    await expect(buffer(applyFixups(failing, ctx))).rejects.toThrow(/disk I\/O error/);
    const source = Readable.from((function* () { for (;;) yield Buffer.from('Subject: x\r\n\r\n' + 'b'.repeat(1000)); })());
    const out = applyFixups(source, ctx);
    out.destroy();
    await new Promise((r) => setTimeout(r, 20));
    expect(source.destroyed).toBe(true);
  });
});
